namespace Ferry.Cluster.State;

/// <summary>
/// Asks every host to snapshot the state at this entry and drop the log before it. A host that knows
/// no leader asks for it: when the leader's answer to an installed snapshot is lost (the install outran
/// the request's timeout), the consensus library keeps sending that same snapshot, which the host has
/// and refuses, and never anything after it; a newer snapshot is the only way out (docs/cluster.md).
/// </summary>
/// <param name="Host">The host that asked.</param>
public sealed record CompactLog(string Host) : ClusterCommand
{
    public override string? HostSubject => Host;

    internal override Result<StateChange> Execute(ClusterState state) =>
        state.Host(Host) is null
            ? FerryError.NotFound($"host '{Host}' is not a member of the cluster")
            : new StateChange(state, $"log compacted for {Host}, which knew no leader: a host that missed the answer to a snapshot catches up from the new one");
}
