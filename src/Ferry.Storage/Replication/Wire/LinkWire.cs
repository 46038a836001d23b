namespace Ferry.Storage.Replication.Wire;

/// <summary>
/// The replication link's framing. Every frame is a 12-byte header (big-endian): magic, type, flags,
/// and the length of the body that follows. Bodies start with fixed fields; a Write's data follows its
/// fixed fields to the end of the body. Lengths are checked against limits before anything is allocated.
/// </summary>
public static class LinkWire
{
    /// <summary>"FRPL": Ferry replication link, version 1.</summary>
    public const uint Magic = 0x4652_504C;

    public const int HeaderSize = 12;

    /// <summary>The most data one Write carries (the NBD maximum payload, so one NBD write is one frame).</summary>
    public const int MaxData = 32 * 1024 * 1024;

    public const int HelloSize = 16 + (8 * 7) + 4 + 1 + MaxHostBytes;

    /// <summary>A Hello names its sender's host in at most this many UTF-8 bytes (a host name is at most 63).</summary>
    public const int MaxHostBytes = 64;
    public const int WriteFixedSize = 8 * 3;
    public const int ZeroSize = 8 * 4;
    public const int FlushSize = 8 * 2;
    public const int AckSize = 8 + 2;
    public const int PingSize = 8;
    public const int SyncSize = (8 * 2) + (8 * 4);
    public const int BitmapFixedSize = 8;
    public const int ChecksumRequestSize = 8 * 4;
    public const int ChecksumsFixedSize = 8;

    /// <summary>Checksums cover blocks of this size, whatever the copies' bitmap block size.</summary>
    public const int ChecksumBlock = 4096;

    /// <summary>The longest range one ChecksumRequest covers: its answer carries 8 bytes per block, 32 KiB at most.</summary>
    public const int MaxChecksumRange = 16 * 1024 * 1024;

    public const int MaxChecksumsData = MaxChecksumRange / ChecksumBlock * sizeof(ulong);
    public const int MaxErrorMessage = 1024;
    public const int MaxBody = WriteFixedSize + MaxData;
}

public enum LinkFrameType : ushort
{
    Hello = 1,
    Write = 2,
    Zero = 3,
    Flush = 4,
    Ack = 5,
    Error = 6,
    Ping = 7,
    Pong = 8,

    /// <summary>Source to target: send your dirty bitmap (a bitmap resync covers the marks of both copies).</summary>
    BitmapRequest = 9,

    /// <summary>Target to source: a run of bitmap words; its data (the words, little-endian) follows like a Write's.</summary>
    Bitmap = 10,

    /// <summary>Source to target: a resync starts; the body carries the source's generation ids after it began.</summary>
    SyncBegin = 11,

    /// <summary>Source to target: every marked block has been sent; the body carries the ids both copies end with.</summary>
    SyncEnd = 12,

    /// <summary>Primary to peer: checksum each 4 KiB block of a range, at this point in the stream of writes.</summary>
    ChecksumRequest = 13,

    /// <summary>Peer to primary, in place of the Ack of a ChecksumRequest: one 64-bit checksum per block follows, little-endian.</summary>
    Checksums = 14,

    /// <summary>
    /// Primary to a peer in step with it: the primary started a new data generation (another peer misses
    /// the writes from here); the body, laid out as a SyncEnd's, carries the ids the peer now holds.
    /// </summary>
    Generation = 15,
}

[Flags]
public enum LinkFrameFlags : ushort
{
    None = 0,

    /// <summary>Write, Zero: synced to disk before it is acknowledged.</summary>
    Fua = 1,

    /// <summary>Zero: the range may become a hole (trim); without it the blocks stay allocated.</summary>
    MayTrim = 2,

    /// <summary>Write: a block sent by a resync rather than by the application.</summary>
    Resync = 4,

    /// <summary>Bitmap: the last run of words.</summary>
    Last = 8,

    /// <summary>SyncBegin: every block is sent, not only the marked ones.</summary>
    Full = 16,
}

/// <summary>The codes of Error frames: why a side ends the link.</summary>
public enum LinkErrorCode : uint
{
    ProtocolViolation = 1,
    WrongVolume = 2,
    WrongSize = 3,

    /// <summary>The sender's epoch is below the highest this copy has seen: it is a stale primary (invariant 2).</summary>
    StaleEpoch = 4,
    ShuttingDown = 5,

    /// <summary>The copies cannot be reconciled without an operator: split brain, unrelated data, or no consistent source.</summary>
    CannotSync = 6,

    /// <summary>The connecting side is not the primary, or this copy is primary too.</summary>
    RoleConflict = 7,

    /// <summary>The peer's copy holds newer data than the primary's: the primary should not be primary.</summary>
    PeerIsNewer = 8,
}

/// <summary>Why a frame was refused; the link answers with an Error frame and closes.</summary>
public enum LinkWireError
{
    None,
    BadMagic,
    UnknownType,
    BadLength,
    TooLarge,
    BadValue,
}
