namespace Ferry.Storage.Replication.Wire;

/// <summary>
/// One parsed frame: the header plus the body of its type. A Write's data is not included: after a
/// Write, <see cref="WriteFrame.Length"/> bytes of data follow in the stream.
/// </summary>
public readonly record struct LinkFrame
{
    public LinkFrameHeader Header { get; init; }

    public HelloFrame Hello { get; init; }

    public WriteFrame Write { get; init; }

    public ZeroFrame Zero { get; init; }

    public FlushFrame Flush { get; init; }

    public AckFrame Ack { get; init; }

    /// <summary>Ping and Pong.</summary>
    public ulong Nonce { get; init; }

    public uint ErrorCode { get; init; }

    /// <summary>Error frames only; errors are rare, so the string is fine.</summary>
    public string? ErrorMessage { get; init; }
}
