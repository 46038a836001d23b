using System.Collections.Immutable;
using Ferry.Cluster.Consensus;
using Ferry.Cluster.State;

namespace Ferry.Agent.Api;

/// <param name="Leases">The cluster's lease timings, the same for every host (null: the defaults).</param>
public sealed record InitClusterRequest(string Name, Ferry.Cluster.Leases.LeaseTimings? Leases = null);

public sealed record JoinTokenRequest(int? ValidSeconds);

public sealed record JoinTokenView(string Token, DateTimeOffset ExpiresAt);

/// <summary>Asks this host to join the cluster that the host at <paramref name="Address"/> (host:port of its peer API) belongs to.</summary>
public sealed record JoinClusterRequest(string Address, string Token, bool Witness = false);

public sealed record RemoveHostRequest(bool Force = false);

/// <summary>What a joining host sends a member: the token, where it can be reached, and a request for its certificate.</summary>
public sealed record PeerJoinRequest(string TokenId, string Secret, HostRecord Host, string CertificateRequestPem);

/// <summary>What a joining host gets back: its certificate and the cluster's authority.</summary>
public sealed record PeerJoinResponse(Guid ClusterId, string ClusterName, DateTimeOffset JoinedAt, string CertificatePem, string AuthorityPem, string AuthorityKeyPem);

public sealed record PeerHostRequest(string Host, bool Force = false);

/// <summary>PUT /api/v1/cluster/hosts/NAME/fence-agent: the program (and arguments) that switches the host off, and its key=value parameters.</summary>
public sealed record FenceAgentRequest(IReadOnlyList<string> Command, IReadOnlyDictionary<string, string>? Parameters = null, int? TimeoutSeconds = null)
{
    public FenceAgent ToAgent() => new([.. Command ?? []], (Parameters ?? new Dictionary<string, string>()).ToImmutableSortedDictionary(StringComparer.Ordinal), TimeoutSeconds ?? FenceAgent.DefaultTimeoutSeconds);
}

/// <summary>A host's fence agent as shown: secret parameters (passwords, keys) are shown as set, never their value.</summary>
public sealed record FenceAgentView(IReadOnlyList<string> Command, IReadOnlyDictionary<string, string> Parameters, int TimeoutSeconds)
{
    public static FenceAgentView Of(FenceAgent agent) =>
        new(agent.Command, agent.Parameters.ToDictionary(p => p.Key, p => FenceAgent.IsSecret(p.Key) ? "(set)" : p.Value, StringComparer.Ordinal), agent.TimeoutSeconds);
}

/// <summary>`ferry cluster status`: the consensus group as one host sees it, and every host's health.</summary>
/// <param name="SeenBy">The host that answered (the leader, when one is known).</param>
public sealed record ClusterStatusView(
    Guid ClusterId,
    string Name,
    string SeenBy,
    string? Leader,
    long Term,
    long CommitIndex,
    long AppliedIndex,
    IReadOnlyList<HostStatusView> Hosts,
    bool NPlusOne = true,
    Ferry.Cluster.Leases.LeaseTimings? Leases = null);

/// <summary>`ferry cluster set`: the settings to change (null: unchanged).</summary>
public sealed record ClusterSettingsRequest(bool? NPlusOne);

/// <param name="Voting">In the consensus group's membership (a joining host is not yet).</param>
/// <param name="Health">reachable, unreachable or unknown, as the answering host last saw it.</param>
/// <param name="Fenced">When and why the host was fenced, while it is.</param>
/// <param name="FenceAgent">What switches it off when it fails (none: its lease and self-fencing alone).</param>
/// <param name="Maintenance">Since when it is drained for maintenance, while it is.</param>
/// <param name="Resources">What it gives VMs, as it last reported.</param>
/// <param name="UsedMiB">Memory of the VMs placed on it that should run.</param>
public sealed record HostStatusView(
    string Name,
    HostRole Role,
    string ConsensusAddress,
    string ApiAddress,
    bool IsLeader,
    bool Voting,
    string Health,
    HostFence? Fenced = null,
    FenceAgentView? FenceAgent = null,
    HostMaintenance? Maintenance = null,
    HostResources? Resources = null,
    long UsedMiB = 0);

internal static class ClusterViews
{
    public static ClusterStatusView Status(ClusterState state, ConsensusNode node, string seenBy)
    {
        var members = node.Members.ToDictionary(m => m.Address, StringComparer.Ordinal);
        var leader = node.Leader?.ToString();
        var hosts = state.Hosts.Values.OrderBy(h => h.Name, StringComparer.Ordinal).Select(h =>
        {
            var member = members.GetValueOrDefault(h.ConsensusAddress);
            var health = member is null ? "unknown" : member.IsLocal ? "reachable" : member.Status switch
            {
                "available" => "reachable",
                "unavailable" => "unreachable",
                _ => "unknown",
            };
            return new HostStatusView(h.Name, h.Role, h.ConsensusAddress, h.ApiAddress, h.ConsensusAddress == leader, member is not null, health, h.Fenced,
                h.FenceAgent is { } agent ? FenceAgentView.Of(agent) : null, h.Maintenance, state.Report(h.Name).Resources,
                state.Vms.Values.Where(v => v.Host == h.Name && v.Desired == VmDesiredState.Running).Sum(v => v.Spec.MemoryMiB));
        }).ToList();
        return new ClusterStatusView(
            state.Cluster?.Id ?? Guid.Empty,
            state.Cluster?.Name ?? "",
            seenBy,
            hosts.FirstOrDefault(h => h.IsLeader)?.Name,
            node.Term,
            node.CommitIndex,
            node.AppliedIndex,
            hosts,
            state.Cluster?.NPlusOne ?? true,
            state.Cluster?.LeaseTimings);
    }
}

/// <summary>GET /api/v1/health: the agent answers, and the cluster it is in (null: none).</summary>
public sealed record HealthView(string Status, string? Cluster);

/// <summary>A host renews its lease with the leader (POST /peer/lease).</summary>
/// <param name="FenceSeen">The time of this host's fence as its applied state shows it, if it shows one: proof that it acts on a state without its old VMs and primaries.</param>
/// <param name="Lease">How long after a renewal's sending this host fences itself, if not renewed again (its own timings).</param>
public sealed record LeaseRequest(string Host, DateTimeOffset? FenceSeen = null, TimeSpan? Lease = null);

/// <summary>The leader's answer: the lease holds, as of the renewal's sending.</summary>
public sealed record LeaseGrant(string Leader, long Term);
