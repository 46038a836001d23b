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

    public const int HelloSize = 16 + (8 * 7) + 4;
    public const int WriteFixedSize = 8 * 3;
    public const int ZeroSize = 8 * 4;
    public const int FlushSize = 8 * 2;
    public const int AckSize = 8 + 2;
    public const int PingSize = 8;
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
}

[Flags]
public enum LinkFrameFlags : ushort
{
    None = 0,

    /// <summary>Write, Zero: synced to disk before it is acknowledged.</summary>
    Fua = 1,

    /// <summary>Zero: the range may become a hole (trim); without it the blocks stay allocated.</summary>
    MayTrim = 2,
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
