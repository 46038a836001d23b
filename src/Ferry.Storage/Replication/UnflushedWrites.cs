using Ferry.Storage.Volumes;

namespace Ferry.Storage.Replication;

/// <summary>
/// The ranges a peer has acknowledged as written since the last flush it acknowledged: they are in its
/// page cache, not yet durable, and a power cut there loses them. When the link is lost they count as
/// blocks the peer may lack (DRBD keeps its transfer log until the barrier's acknowledgement for the same
/// reason). Acknowledgements arrive in the order the frames were sent, so a flush's acknowledgement covers
/// every range recorded before it. Exact up to <c>capacity</c> ranges; beyond, block by block in a bitmap
/// made at the first overflow, so a guest that never flushes costs bounded memory and no extra syncs.
/// </summary>
internal sealed class UnflushedWrites(long volumeSize, int blockSize, int capacity = UnflushedWrites.DefaultCapacity)
{
    public const int DefaultCapacity = 65536;

    private readonly Queue<(long Offset, long Length)> _ranges = new();
    private DirtyBitmap? _overflow;
    private bool _overflowed;

    public bool IsEmpty => _ranges.Count == 0 && !_overflowed;

    public void Written(long offset, long length)
    {
        if (_ranges.Count < capacity)
        {
            _ranges.Enqueue((offset, length));
            return;
        }

        (_overflow ??= new DirtyBitmap(volumeSize, blockSize)).Mark(offset, length);
        _overflowed = true;
    }

    /// <summary>The peer made everything recorded so far durable.</summary>
    public void Flushed()
    {
        _ranges.Clear();
        if (_overflowed)
        {
            _overflow!.ClearAll();
            _overflowed = false;
        }
    }

    /// <summary>Marks every recorded block in each of <paramref name="bitmaps"/>, then forgets them; false when there were none.</summary>
    public bool MarkIn(params ReadOnlySpan<DirtyBitmap?> bitmaps)
    {
        if (IsEmpty)
        {
            return false;
        }

        foreach (var bitmap in bitmaps)
        {
            if (bitmap is null)
            {
                continue;
            }

            foreach (var (offset, length) in _ranges)
            {
                bitmap.Mark(offset, length);
            }

            if (_overflowed)
            {
                bitmap.Merge(0, _overflow!.Words);
            }
        }

        Flushed();
        return true;
    }
}
