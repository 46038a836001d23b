using System.Collections.Immutable;

namespace Ferry.Cluster.State;

/// <summary>
/// What the cluster agrees on: every host applies the same committed commands to it in the same order
/// and so holds the same value. Immutable, so readers on any thread see one whole state.
/// </summary>
public sealed record ClusterState
{
    /// <summary>How many events the state keeps; older ones fall off.</summary>
    public const int EventCapacity = 1000;

    /// <summary>How many command ids the state remembers to answer a repeated command with its first outcome.</summary>
    public const int RememberedCommands = 4096;

    public static ClusterState Empty { get; } = new();

    public ClusterInfo? Cluster { get; init; }

    public ImmutableDictionary<string, HostRecord> Hosts { get; init; } = ImmutableDictionary<string, HostRecord>.Empty;

    public ImmutableDictionary<string, JoinToken> Tokens { get; init; } = ImmutableDictionary<string, JoinToken>.Empty;

    public ImmutableDictionary<string, VolumeRecord> Volumes { get; init; } = ImmutableDictionary<string, VolumeRecord>.Empty;

    public ImmutableDictionary<string, VmRecord> Vms { get; init; } = ImmutableDictionary<string, VmRecord>.Empty;

    /// <summary>What each host last reported of its copies and VMs, by host.</summary>
    public ImmutableDictionary<string, HostReport> Reports { get; init; } = ImmutableDictionary<string, HostReport>.Empty;

    public ImmutableList<ClusterEvent> Events { get; init; } = [];

    /// <summary>The sequence number the next event gets; it never repeats, even after older events fall off.</summary>
    public long NextEventSequence { get; init; } = 1;

    /// <summary>Outcomes of the latest commands by id, oldest first, so a retried command changes nothing twice.</summary>
    public ImmutableList<AppliedCommand> Applied { get; init; } = [];

    public HostRecord? Host(string name) => Hosts.GetValueOrDefault(name);

    public VolumeRecord? Volume(string name) => Volumes.GetValueOrDefault(name);

    public VmRecord? Vm(string name) => Vms.GetValueOrDefault(name);

    public HostReport Report(string host) => Reports.GetValueOrDefault(host) ?? HostReport.Empty;

    /// <summary>The volumes (of those <paramref name="which"/> picks) whose primary is <paramref name="host"/> lose it; epochs stay, so the next promotion goes higher.</summary>
    internal (ClusterState State, IReadOnlyList<string> Volumes) WithoutPrimaries(string host, Func<VolumeRecord, bool> which)
    {
        var given = Volumes.Values.Where(v => v.Primary == host && which(v)).Select(v => v.Name).Order(StringComparer.Ordinal).ToList();
        return (this with { Volumes = Volumes.SetItems(given.Select(v => KeyValuePair.Create(v, Volumes[v] with { Primary = null }))) }, given);
    }
}

/// <summary>A command's id and the outcome it had when first applied.</summary>
public sealed record AppliedCommand(Guid Id, CommandOutcome Outcome);
