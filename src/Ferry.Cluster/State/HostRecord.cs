namespace Ferry.Cluster.State;

public enum HostRole
{
    /// <summary>Votes, runs VMs and holds volume copies.</summary>
    Member,

    /// <summary>Votes and holds nothing else: the tie-breaker of a two-host cluster.</summary>
    Witness,
}

/// <summary>A host of the cluster and where the others reach it.</summary>
/// <param name="ConsensusAddress">host:port of its consensus (Raft) endpoint.</param>
/// <param name="ApiAddress">Base URL of its REST API.</param>
/// <param name="ReplicationAddress">host:port where primaries connect to its volume copies (none on a witness).</param>
/// <param name="Certificate">SHA-256 fingerprint of the certificate it was given when it joined: the only one other hosts accept from it.</param>
/// <param name="Fenced">Set while the host is known to be fenced (DESIGN invariant 4): it runs nothing of the cluster's until it is back.</param>
/// <param name="FenceAgent">What switches the host off when it fails (none: its lease and self-fencing alone).</param>
/// <param name="Maintenance">Set while the host is drained for maintenance: its VMs move away and no VM is placed on it.</param>
public sealed record HostRecord(
    string Name,
    string ConsensusAddress,
    string ApiAddress,
    string? ReplicationAddress,
    HostRole Role,
    DateTimeOffset JoinedAt,
    string? Certificate = null,
    HostFence? Fenced = null,
    FenceAgent? FenceAgent = null,
    HostMaintenance? Maintenance = null)
{
    /// <summary>Whether VMs may be placed on it now: a member, not fenced, not in maintenance.</summary>
    public bool TakesVms => Role == HostRole.Member && Fenced is null && Maintenance is null;
}

/// <summary>When and why a host was fenced; the host must have seen this very record before it is let back.</summary>
public sealed record HostFence(DateTimeOffset At, string Reason);

/// <summary>Since when a host is drained for maintenance.</summary>
public sealed record HostMaintenance(DateTimeOffset Since);
