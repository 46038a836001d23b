using Ferry.Cluster.State;
using Ferry.Storage.Replication;

namespace Ferry.Agent.Cluster;

/// <summary>
/// Epochs and Outdated marks for the volumes in the cluster state, granted by consensus; a volume the
/// cluster does not know (made on this host before it joined, or with no cluster at all) keeps the
/// host's local record.
/// </summary>
internal sealed class ClusterReplicationAuthority(ClusterService cluster, IReplicationAuthority local, TimeProvider time) : IReplicationAuthority
{
    /// <summary>
    /// The cluster grants the epoch first (PromoteCopy); the copy only checks that the grant is this one.
    /// </summary>
    public Task<Result<ulong>> RecordPromotionAsync(Guid volumeId, string host, ulong epoch, CancellationToken ct)
    {
        if (VolumeOf(volumeId) is not { } volume)
        {
            return local.RecordPromotionAsync(volumeId, host, epoch, ct);
        }

        return Task.FromResult<Result<ulong>>(volume.Primary == host && volume.Epoch == epoch
            ? epoch
            : FerryError.Conflict($"the cluster granted epoch {volume.Epoch} of '{volume.Name}' to {volume.Primary ?? "no host"}, not epoch {epoch} to {host}"));
    }

    public async Task<OutdateResult> OutdateAsync(OutdateRequest request, CancellationToken ct)
    {
        if (VolumeOf(request.VolumeId) is not { } volume)
        {
            return await local.OutdateAsync(request, ct).ConfigureAwait(false);
        }

        var proposed = await cluster.ProposeAsync(new OutdateCopy(volume.Name, request.PeerHost, request.ByHost, request.Epoch) { At = time.GetUtcNow() }, ct).ConfigureAwait(false);
        if (!proposed.TryGetValue(out var outcome, out var unavailable))
        {
            return new OutdateResult(OutdateOutcome.Unavailable, unavailable.Message);
        }

        return outcome.Error is { } refused
            ? new OutdateResult(refused.Code == ErrorCode.WrongState ? OutdateOutcome.Refused : OutdateOutcome.Unavailable, refused.Message)
            : new OutdateResult(OutdateOutcome.Granted, outcome.Message);
    }

    public async Task ClearOutdatedAsync(Guid volumeId, string host, CancellationToken ct)
    {
        if (VolumeOf(volumeId) is not { } volume)
        {
            await local.ClearOutdatedAsync(volumeId, host, ct).ConfigureAwait(false);
            return;
        }

        if (volume.Outdated.ContainsKey(host))
        {
            // Best effort: a mark left behind only makes a later promotion of that copy ask for force.
            await cluster.ProposeAsync(new ClearOutdated(volume.Name, host) { At = time.GetUtcNow() }, ct).ConfigureAwait(false);
        }
    }

    public Task<OutdatedMark?> GetOutdatedAsync(Guid volumeId, string host, CancellationToken ct) =>
        VolumeOf(volumeId) is { } volume ? Task.FromResult(volume.Outdated.GetValueOrDefault(host)) : local.GetOutdatedAsync(volumeId, host, ct);

    private VolumeRecord? VolumeOf(Guid volumeId) =>
        cluster.State?.Volumes.Values.FirstOrDefault(v => v.Id == volumeId);
}
