namespace Ferry.Storage.Replication.Wire;

/// <summary>
/// One parsed frame: the header plus the body of its type. Data is not included: after a Write,
/// <see cref="WriteFrame.Length"/> bytes follow in the stream, after a Bitmap <see cref="BitmapFrame.Length"/>,
/// after Checksums <see cref="ChecksumsFrame.Length"/>.
/// </summary>
public readonly record struct LinkFrame
{
    public LinkFrameHeader Header { get; init; }

    public HelloFrame Hello { get; init; }

    public WriteFrame Write { get; init; }

    public ZeroFrame Zero { get; init; }

    public FlushFrame Flush { get; init; }

    public AckFrame Ack { get; init; }

    /// <summary>SyncBegin, SyncEnd and Generation.</summary>
    public SyncFrame Sync { get; init; }

    public BitmapFrame Bitmap { get; init; }

    public ChecksumRequestFrame ChecksumRequest { get; init; }

    public ChecksumsFrame Checksums { get; init; }

    /// <summary>Ping and Pong.</summary>
    public ulong Nonce { get; init; }

    public uint ErrorCode { get; init; }

    /// <summary>Error frames only; errors are rare, so the string is fine.</summary>
    public string? ErrorMessage { get; init; }
}
