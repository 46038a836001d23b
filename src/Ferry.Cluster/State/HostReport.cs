using System.Collections.Immutable;
using Ferry.Hypervisor;
using Ferry.Storage.Replication.Wire;
using Ferry.Storage.Volumes;

namespace Ferry.Cluster.State;

/// <summary>What a host's local manager last saw of its volume copies and VMs, by name.</summary>
/// <param name="Resources">What the host gives VMs (null: not reported yet).</param>
public sealed record HostReport(DateTimeOffset At, ImmutableDictionary<string, CopyReport> Copies, ImmutableDictionary<string, VmReport> Vms, HostResources? Resources = null)
{
    public static HostReport Empty { get; } = new(default, ImmutableDictionary<string, CopyReport>.Empty, ImmutableDictionary<string, VmReport>.Empty);

    /// <summary>Whether the two say the same, whenever they were made: a host reports only what changed.</summary>
    public bool SaysSameAs(HostReport? other) =>
        other is not null && Equals(Resources, other.Resources) && Same(Copies, other.Copies) && Same(Vms, other.Vms);

    private static bool Same<T>(ImmutableDictionary<string, T> a, ImmutableDictionary<string, T> b) =>
        a.Count == b.Count && a.All(pair => b.TryGetValue(pair.Key, out var value) && Equals(value, pair.Value));
}

/// <summary>A host's memory and CPUs, and the memory it keeps for itself (never given to VMs).</summary>
public sealed record HostResources(long MemoryMiB, int Cpus, long ReservedMiB);

/// <summary>A copy as its host sees it; <paramref name="Problem"/> says why it is not where the cluster wants it.</summary>
public sealed record CopyReport(DiskState Disk, CopyRole Role, ConnectionState Connection, ulong Epoch, string? Problem = null);

/// <summary>A VM as its host sees it; <paramref name="Problem"/> says why it is not as the cluster wants it.</summary>
/// <param name="StartedAtGrant">The VM's count of granted restarts (<see cref="VmRecovery.Grants"/>) when this host last started it: a crash at the current count is one the cluster has not answered yet.</param>
public sealed record VmReport(VmState State, string? Problem = null, long StartedAtGrant = 0);

/// <summary>A host's local manager tells what it sees. Kept out of the event log: it says nothing new, only what is.</summary>
public sealed record ReportHost(string Host, HostReport Report) : ClusterCommand
{
    public override bool RecordsEvent => false;

    public override string? HostSubject => Host;

    internal override Result<StateChange> Execute(ClusterState state) =>
        state.Hosts.ContainsKey(Host)
            ? new StateChange(state with { Reports = state.Reports.SetItem(Host, Report with { At = At }) }, $"{Host} reported")
            : FerryError.NotFound($"no host named '{Host}' in the cluster");
}
