using Ferry.Storage;

namespace Ferry.Tests.Nbd;

/// <summary>
/// A block device in memory, for server tests. Requests touching [FailOffset, FailOffset + FailLength) fail with
/// <see cref="FailWith"/>; reads at <see cref="GateOffset"/> wait for <see cref="Gate"/>, to hold a request in flight.
/// </summary>
internal sealed class MemoryBlockDevice(int size, bool readOnly = false) : IBlockDevice
{
    private readonly byte[] _data = new byte[size];

    public long Size => _data.Length;

    public bool IsReadOnly => readOnly;

    public bool FlushIsGlobal => true;

    public byte[] Data => _data;

    public int Flushes { get; private set; }

    public long FailOffset { get; set; } = -1;

    public long FailLength { get; set; }

    public BlockError FailWith { get; set; } = BlockError.Io;

    public long GateOffset { get; set; } = -1;

    public TaskCompletionSource Gate { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public async ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken ct)
    {
        if (offset == GateOffset)
        {
            await Gate.Task.WaitAsync(ct);
        }

        ThrowIfFailing(offset, destination.Length);
        _data.AsMemory((int)offset, destination.Length).CopyTo(destination);
    }

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> source, bool fua, CancellationToken ct)
    {
        ThrowIfFailing(offset, source.Length);
        source.CopyTo(_data.AsMemory((int)offset));
        return ValueTask.CompletedTask;
    }

    public ValueTask FlushAsync(CancellationToken ct)
    {
        Flushes++;
        return ValueTask.CompletedTask;
    }

    public ValueTask TrimAsync(long offset, long length, bool fua, CancellationToken ct) =>
        WriteZeroesAsync(offset, length, WriteZeroesFlags.None, ct);

    public ValueTask WriteZeroesAsync(long offset, long length, WriteZeroesFlags flags, CancellationToken ct)
    {
        ThrowIfFailing(offset, length);
        _data.AsSpan((int)offset, (int)length).Clear();
        return ValueTask.CompletedTask;
    }

    /// <summary>Zero 4 KiB pages are holes, others data.</summary>
    public ValueTask<int> MapAsync(long offset, long length, Memory<AllocationExtent> extents, CancellationToken ct)
    {
        ThrowIfFailing(offset, length);
        var span = extents.Span;
        var count = 0;
        var end = offset + length;
        while (offset < end && count < span.Length)
        {
            var pageEnd = Math.Min((offset / 4096 + 1) * 4096, end);
            var flags = _data.AsSpan((int)offset, (int)(pageEnd - offset)).ContainsAnyExcept((byte)0)
                ? AllocationFlags.Data
                : AllocationFlags.Hole | AllocationFlags.Zero;
            if (count > 0 && span[count - 1].Flags == flags)
            {
                span[count - 1] = span[count - 1] with { Length = span[count - 1].Length + (pageEnd - offset) };
            }
            else
            {
                span[count++] = new AllocationExtent(pageEnd - offset, flags);
            }

            offset = pageEnd;
        }

        return ValueTask.FromResult(count);
    }

    private void ThrowIfFailing(long offset, long length)
    {
        if (FailOffset >= 0 && offset < FailOffset + FailLength && FailOffset < offset + length)
        {
            throw new BlockDeviceException(FailWith, "injected failure");
        }
    }
}
