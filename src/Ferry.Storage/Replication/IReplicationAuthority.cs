namespace Ferry.Storage.Replication;

/// <summary>A primary asks that a peer copy it goes on without be marked Outdated (DESIGN invariant 3).</summary>
public readonly record struct OutdateRequest(Guid VolumeId, string VolumeName, string PeerHost, string ByHost, ulong Epoch);

public enum OutdateOutcome
{
    /// <summary>The mark is durable: the primary may acknowledge writes the peer lacks.</summary>
    Granted,

    /// <summary>Refused for good: the asking primary is stale (a newer epoch was granted). It must not go on writing.</summary>
    Refused,

    /// <summary>The authority cannot be reached now; I/O waits and the primary asks again.</summary>
    Unavailable,
}

public readonly record struct OutdateResult(OutdateOutcome Outcome, string Reason);

/// <summary>What the authority knows about a copy marked Outdated.</summary>
public sealed record OutdatedMark(string Host, string ByHost, ulong Epoch, DateTimeOffset At);

/// <summary>
/// Who grants epochs and Outdated marks for volume copies. The cluster state will own this (a consensus
/// write per call); until then a durable local record stands in (<see cref="FileReplicationAuthority"/>).
/// </summary>
public interface IReplicationAuthority
{
    /// <summary>Records a promotion; refused unless <paramref name="epoch"/> is above every epoch granted for the volume.</summary>
    Task<Result<ulong>> RecordPromotionAsync(Guid volumeId, string host, ulong epoch, CancellationToken ct);

    Task<OutdateResult> OutdateAsync(OutdateRequest request, CancellationToken ct);

    /// <summary>The host's copy is in step again (a resync finished); its mark goes.</summary>
    Task ClearOutdatedAsync(Guid volumeId, string host, CancellationToken ct);

    Task<OutdatedMark?> GetOutdatedAsync(Guid volumeId, string host, CancellationToken ct);
}
