using Ferry.Storage.Replication.Wire;
using Ferry.Storage.Volumes;

namespace Ferry.Storage.Replication;

/// <summary>A peer copy as this copy's primary sees it, for the API and <c>ferry volume show</c>.</summary>
/// <param name="Reason">Why the link is not replicating (a refused handshake, a split brain), or null.</param>
/// <param name="Decision">The last handshake's sync decision, e.g. "MissedWrites: the target still holds …".</param>
/// <param name="ResyncBytesSent">Bytes of data sent by resyncs to this peer since the agent started.</param>
/// <param name="Verify">The running or last online verify, if any since the link started.</param>
public sealed record PeerStatus(
    string Host,
    string Address,
    ConnectionState Connection,
    DiskState? Disk,
    bool Outdated,
    string? Reason,
    string? Decision,
    ResyncProgress? Resync,
    long ResyncBytesSent,
    VerifyProgress? Verify);

/// <summary>A running (or the last) resync: how much it has to copy, how much is done, and when it should end.</summary>
public sealed record ResyncProgress(
    bool Full,
    long TotalBytes,
    long DoneBytes,
    DateTimeOffset StartedAt,
    DateTimeOffset? FinishedAt,
    double BytesPerSecond,
    TimeSpan? TimeLeft)
{
    public double Percent => TotalBytes == 0 ? 100 : 100.0 * DoneBytes / TotalBytes;
}

/// <summary>A running (or the last) online verify against a peer: blocks compared by checksum and those that differed.</summary>
/// <param name="FirstDifferences">Offsets of the first runs of differing blocks (a few, for the report).</param>
/// <param name="Error">Why the verify stopped early (the link was lost), or null.</param>
public sealed record VerifyProgress(
    long TotalBytes,
    long DoneBytes,
    long DifferentBlocks,
    IReadOnlyList<long> FirstDifferences,
    DateTimeOffset StartedAt,
    DateTimeOffset? FinishedAt,
    string? Error)
{
    public double Percent => TotalBytes == 0 ? 100 : 100.0 * DoneBytes / TotalBytes;
}
