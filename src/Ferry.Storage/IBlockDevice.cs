namespace Ferry.Storage;

/// <summary>
/// The storage behind one NBD export: a volume copy today, a replicated volume later. Offsets and
/// lengths are in bytes and already checked against <see cref="Size"/> by the caller. Implementations
/// signal expected failures with <see cref="BlockDeviceException"/>; they must not allocate per call
/// on the read and write paths.
/// </summary>
public interface IBlockDevice
{
    /// <summary>Current size in bytes (a client sees the size at the time it negotiated).</summary>
    long Size { get; }

    bool IsReadOnly { get; }

    /// <summary>True when a flush through any connection makes every connection's completed writes durable (NBD CAN_MULTI_CONN).</summary>
    bool FlushIsGlobal { get; }

    ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken ct);

    /// <summary>Writes; with <paramref name="fua"/> the data is durable before this completes.</summary>
    ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> source, bool fua, CancellationToken ct);

    /// <summary>Makes every completed write durable (fdatasync).</summary>
    ValueTask FlushAsync(CancellationToken ct);

    /// <summary>Discards a range; reading it afterwards returns zeroes (thin provisioning: the space is freed).</summary>
    ValueTask TrimAsync(long offset, long length, bool fua, CancellationToken ct);

    /// <summary>Zeroes a range, freeing space unless <see cref="WriteZeroesFlags.NoHole"/>; with
    /// <see cref="WriteZeroesFlags.FastZero"/> it fails with <see cref="BlockError.NotSupported"/> rather than write zeroes slowly.</summary>
    ValueTask WriteZeroesAsync(long offset, long length, WriteZeroesFlags flags, CancellationToken ct);

    /// <summary>
    /// Describes allocation from <paramref name="offset"/> onwards as consecutive extents (at least one,
    /// together covering at most <paramref name="length"/> bytes), written to <paramref name="extents"/>;
    /// returns how many were written.
    /// </summary>
    ValueTask<int> MapAsync(long offset, long length, Memory<AllocationExtent> extents, CancellationToken ct);
}

[Flags]
public enum WriteZeroesFlags
{
    None = 0,
    Fua = 1,
    NoHole = 2,
    FastZero = 4,
}

/// <summary>NBD base:allocation's state bits: a hole is unallocated, zero reads as zeroes.</summary>
[Flags]
public enum AllocationFlags : uint
{
    Data = 0,
    Hole = 1,
    Zero = 2,
}

public readonly record struct AllocationExtent(long Length, AllocationFlags Flags);

public enum BlockError
{
    Io,
    NoSpace,
    Invalid,
    NotSupported,
    ReadOnly,
}

/// <summary>An expected failure of a block device, reported to the client as the matching NBD error.</summary>
public sealed class BlockDeviceException : IOException
{
    public BlockDeviceException(BlockError error, string message)
        : base(message) => Error = error;

    public BlockDeviceException()
    {
    }

    public BlockDeviceException(string message)
        : base(message)
    {
    }

    public BlockDeviceException(string message, Exception inner)
        : base(message, inner)
    {
    }

    public BlockError Error { get; }
}
