using Ferry.Storage.Volumes;

namespace Ferry.Storage.Replication.Wire;

public readonly record struct LinkFrameHeader(LinkFrameType Type, LinkFrameFlags Flags, int BodyLength);

/// <summary>Disk states as the link reports them (DESIGN §4).</summary>
public enum DiskState : byte
{
    Diskless = 0,
    Inconsistent = 1,
    Outdated = 2,
    UpToDate = 3,
}

public enum CopyRole : byte
{
    Secondary = 0,
    Primary = 1,
}

/// <summary>When a write is acknowledged to the application (DESIGN §2).</summary>
public enum ReplicationProtocol : byte
{
    /// <summary>After the local write; the peer's copy follows asynchronously.</summary>
    A = (byte)'A',

    /// <summary>After every connected up-to-date peer has received it.</summary>
    B = (byte)'B',

    /// <summary>After every connected up-to-date peer has it on disk.</summary>
    C = (byte)'C',
}

/// <summary>
/// What each side says about its copy when the link comes up; the sync decision works from this.
/// <see cref="Host"/> names the sender's host (its first <see cref="LinkWire.MaxHostBytes"/> UTF-8
/// bytes), so that a copy followed by two primaries knows which is which.
/// </summary>
public readonly record struct HelloFrame(
    Guid VolumeId,
    long Size,
    GenerationIds Generations,
    ulong Epoch,
    ulong DirtyBlocks,
    DiskState Disk,
    CopyRole Role,
    ReplicationProtocol Protocol,
    bool CrashedPrimary,
    string Host);

/// <summary>A write from the primary. Its data follows; the epoch lets a copy refuse a stale primary (invariant 2).</summary>
public readonly record struct WriteFrame(ulong Sequence, ulong Epoch, long Offset, int Length, bool Fua);

public readonly record struct ZeroFrame(ulong Sequence, ulong Epoch, long Offset, long Length, bool Fua, bool MayTrim);

/// <summary>Every write before it (by sequence) must be durable before it is acknowledged.</summary>
public readonly record struct FlushFrame(ulong Sequence, ulong Epoch);

public enum AckKind : byte
{
    /// <summary>The peer has the data in memory (protocol B).</summary>
    Received = 1,

    /// <summary>
    /// The peer has written the data to its copy (protocol C), as durable as a local write: made durable
    /// by FUA or a following Flush, which the peer syncs before acknowledging them.
    /// </summary>
    Written = 2,
}

public enum AckStatus : byte
{
    Ok = 0,
    IoError = 1,
    NoSpace = 2,

    /// <summary>The frame's epoch is lower than the highest this copy has seen: the sender is a stale primary.</summary>
    StaleEpoch = 3,
    Invalid = 4,
}

/// <summary>What a failed <see cref="AckStatus"/> means, for logs and the peer's reason in `ferry volume show`.</summary>
public static class AckStatusText
{
    public static string Of(AckStatus status) => status switch
    {
        AckStatus.Ok => "done",
        AckStatus.IoError => "an I/O error on its disk (IoError)",
        AckStatus.NoSpace => "no space left on its disk (NoSpace)",
        AckStatus.StaleEpoch => "a newer primary exists (StaleEpoch)",
        AckStatus.Invalid => "the request was outside the volume or malformed (Invalid)",
        _ => $"unknown status {(byte)status}",
    };
}

/// <summary>SyncBegin and SyncEnd: the generation ids the target takes (DESIGN §4, GenerationRules).</summary>
public readonly record struct SyncFrame(ulong Sequence, ulong Epoch, GenerationIds Ids, bool Full);

/// <summary>A run of dirty-bitmap words starting at <see cref="FirstWord"/>; <see cref="Length"/> bytes of words follow.</summary>
public readonly record struct BitmapFrame(long FirstWord, int Length, bool Last);

/// <summary>Asks the peer for the checksums of a range (verify, checksum resync); it answers with a <see cref="ChecksumsFrame"/>.</summary>
public readonly record struct ChecksumRequestFrame(ulong Sequence, ulong Epoch, long Offset, long Length);

/// <summary>The checksums answering request <see cref="Sequence"/>; <see cref="Length"/> bytes of checksums follow.</summary>
public readonly record struct ChecksumsFrame(ulong Sequence, int Length);

public readonly record struct AckFrame(ulong Sequence, AckKind Kind, AckStatus Status);
