using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;

namespace Ferry.Storage.Volumes;

/// <summary>
/// The activity log of a primary copy (DRBD's "activity log"): the 4 MiB extents written to lately,
/// kept durably in the metadata file. Every write, zero and trim runs inside logged extents, from
/// before <see cref="BeginAsync"/> returns until <see cref="End"/>, and the dirty bits of an extent
/// are made durable before the extent leaves the log. After a crash, the on-disk bitmap plus the
/// logged extents therefore cover every block that may differ from the peer, and only those are
/// resynced (<see cref="Recover"/>).
/// <para>
/// Written is not durable: a write lives in the page cache of each copy until a flush. So an extent
/// also stays in the log until a flush of every copy has covered its last write (<see cref="BeginFlush"/>,
/// <see cref="FlushDone"/>); when the log must shrink and only such extents are idle, it has every copy
/// flushed first (the flush given to the constructor). Then a crash of this copy's host, or of every host
/// at once, leaves no block outside the logged extents that one copy has and another lost.
/// </para>
/// </summary>
/// <remarks>
/// Each extent has one state word: the <see cref="Logged"/> flag while the extent is in the durable
/// log, plus the number of references held (<see cref="BeginAsync"/> without <see cref="End"/> yet).
/// Taking a reference on a logged extent is one interlocked increment. Only the holder of the gate
/// adds extents to the log or removes them, and it removes one only by a compare-and-swap from
/// "logged, no references" to "not logged"; a concurrent increment either comes first and keeps the
/// extent, or finds it not logged, undoes itself and waits for the gate.
/// </remarks>
public sealed class ActivityLog : IDisposable
{
    public const int ExtentSize = 4 * 1024 * 1024;

    /// <summary>The longest range <see cref="BeginAsync"/> takes wherever it starts; split longer trims and zeroes.</summary>
    public const long MaxRangeLength = (ActivityLogRecord.MaxExtents - 1L) * ExtentSize;

    /// <summary>Extents the log keeps while they are idle: about 4 GiB of recently written data.</summary>
    public const int DefaultCapacity = 1000;

    private const int Logged = 1 << 30;
    private const int ReferenceMask = Logged - 1;

    /// <summary>Blocks whose bits share one 4 KiB page of the bitmap region; removed extents this close are written in one go.</summary>
    private const long BitmapBlocksPerPage = Superblock.SlotSize * 8L;

    private readonly MetadataFile _metadata;
    private readonly DirtyBitmap _bitmap;
    private readonly long _volumeSize;
    private readonly int _capacity;

    // Per extent, shared by all writers: the Logged flag and reference count, and the Stopwatch
    // timestamp of the latest BeginAsync (for choosing the least recently used extent to remove).
    private readonly int[] _state;
    private readonly long[] _lastUsed;

    // Per extent: the number of flushes begun when its latest write ended. A flush whose ticket is higher
    // began after that write and covers it.
    private readonly long[] _writtenBefore;
    private readonly Func<CancellationToken, ValueTask>? _flushEveryCopy;
    private long _flushesBegun;
    private long _flushedThrough;

    private readonly SemaphoreSlim _gate = new(1, 1);

    // Owned by the gate holder. _logged lists the extents of the newest durable record; each has the
    // Logged flag, and no other extent has it, except while the gate holder is removing extents.
    private uint[] _logged = new uint[ActivityLogRecord.MaxExtents];
    private int _loggedCount;
    private uint[] _nextLogged = new uint[ActivityLogRecord.MaxExtents];
    private readonly uint[] _missing = new uint[ActivityLogRecord.MaxExtents];
    private readonly uint[] _removed = new uint[ActivityLogRecord.MaxExtents];
    private readonly uint[] _candidates = new uint[ActivityLogRecord.MaxExtents];
    private readonly long[] _candidateLastUsed = new long[ActivityLogRecord.MaxExtents];
    private ulong _sequence;

    private uint[] _published = [];

    // Set while the gate holder waits for extents to become idle; End completes it.
    private TaskCompletionSource? _idleWaiter;

    /// <summary>
    /// An empty log for a volume of <paramref name="volumeSize"/> bytes whose dirty bits are kept in
    /// <paramref name="bitmap"/> (the bitmap read from <paramref name="metadata"/>). Only the sequence
    /// number of the on-disk log is read: its extents are replaced by the first record written, so
    /// after an unclean stop call <see cref="Recover"/> first. <paramref name="flushEveryCopy"/> makes
    /// every copy's writes durable (and reports it through <see cref="BeginFlush"/> and <see cref="FlushDone"/>);
    /// without one, extents leave the log whether or not their writes are durable.
    /// </summary>
    public ActivityLog(MetadataFile metadata, DirtyBitmap bitmap, long volumeSize, int capacity = DefaultCapacity, Func<CancellationToken, ValueTask>? flushEveryCopy = null)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        ArgumentNullException.ThrowIfNull(bitmap);
        ArgumentOutOfRangeException.ThrowIfNegative(volumeSize);
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(capacity, ActivityLogRecord.MaxExtents);
        if (volumeSize > bitmap.Blocks * bitmap.BlockSize)
        {
            throw new ArgumentException($"the bitmap covers {bitmap.Blocks * bitmap.BlockSize} bytes, less than the volume's {volumeSize}", nameof(bitmap));
        }

        _metadata = metadata;
        _bitmap = bitmap;
        _volumeSize = volumeSize;
        _capacity = capacity;
        var extents = (volumeSize + ExtentSize - 1) / ExtentSize;
        _state = new int[extents];
        _lastUsed = new long[extents];
        _writtenBefore = new long[extents];
        _flushEveryCopy = flushEveryCopy;

        // Continuing the on-disk sequence: a lower number would lose to an older record in the other slot.
        _sequence = metadata.ReadActivityLog()?.Sequence ?? 0;
    }

    /// <summary>Extents in the durable log.</summary>
    public int ActiveCount => Volatile.Read(ref _published).Length;

    /// <summary>Whether no write holds an extent now (a new one may begin right after).</summary>
    public bool Idle => !_state.AsSpan().ContainsAnyExcept(0, Logged);

    /// <summary>The extents in the durable log, ascending (a snapshot).</summary>
    public IReadOnlyList<uint> ActiveExtents => Volatile.Read(ref _published);

    /// <summary>
    /// Returns once every 4 MiB extent the byte range touches is in the durable log, holding a
    /// reference on each until <see cref="End"/> with the same range. Synchronous and allocation-free
    /// when they all are already; otherwise one durable write of the log, after writing the dirty bits
    /// of the idle extents it removes to stay within capacity.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">
    /// The range is outside the volume or touches more than <see cref="ActivityLogRecord.MaxExtents"/> extents
    /// (split it into pieces of at most <see cref="MaxRangeLength"/> bytes).
    /// </exception>
    public ValueTask BeginAsync(long offset, long length, CancellationToken ct)
    {
        var (first, end) = ExtentRange(offset, length);
        var now = Stopwatch.GetTimestamp();
        for (var extent = first; extent < end; extent++)
        {
            if ((Interlocked.Increment(ref _state[extent]) & Logged) == 0)
            {
                Release(first, extent + 1);
                return BeginSlowAsync(first, end, ct);
            }

            Volatile.Write(ref _lastUsed[extent], now);
        }

        return default;
    }

    /// <summary>Drops the references a completed <see cref="BeginAsync"/> took for the same range, once its write is done.</summary>
    public void End(long offset, long length)
    {
        var (first, end) = ExtentRange(offset, length);
        var begun = Volatile.Read(ref _flushesBegun);
        for (var extent = first; extent < end; extent++)
        {
            Volatile.Write(ref _writtenBefore[extent], begun);
        }

        Release(first, end);
    }

    /// <summary>A flush of every copy begins: writes ended before now are in it. Returns its ticket for <see cref="FlushDone"/>.</summary>
    public long BeginFlush() => Interlocked.Increment(ref _flushesBegun);

    /// <summary>The flush with <paramref name="ticket"/> made every copy's writes durable.</summary>
    public void FlushDone(long ticket)
    {
        var seen = Volatile.Read(ref _flushedThrough);
        while (ticket > seen)
        {
            var was = Interlocked.CompareExchange(ref _flushedThrough, ticket, seen);
            if (was == seen)
            {
                return;
            }

            seen = was;
        }
    }

    /// <summary>
    /// After an unclean stop: marks in <paramref name="bitmap"/> (the bitmap read from
    /// <paramref name="metadata"/>) every block of the extents in the on-disk log, clipped to the
    /// volume, and writes the bitmap back so those marks outlive the next record. Returns the number
    /// of extents folded in.
    /// </summary>
    public static long Recover(MetadataFile metadata, DirtyBitmap bitmap)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        ArgumentNullException.ThrowIfNull(bitmap);
        if (metadata.ReadActivityLog() is not { } record)
        {
            return 0;
        }

        var size = metadata.Current.Size;
        long folded = 0;
        foreach (var extent in record.Extents.Span)
        {
            var offset = (long)extent * ExtentSize;
            if (offset < size)
            {
                bitmap.Mark(offset, Math.Min(ExtentSize, size - offset));
                folded++;
            }
        }

        if (folded > 0)
        {
            metadata.WriteBitmap(bitmap);
        }

        return folded;
    }

    /// <summary>
    /// On clean shutdown or demotion: writes the whole bitmap, then an empty log. The log stays usable.
    /// </summary>
    /// <exception cref="InvalidOperationException">A reference is still held.</exception>
    public void Clear()
    {
        _gate.Wait();
        try
        {
            var removed = 0;
            for (var i = 0; i < _loggedCount; i++)
            {
                var extent = _logged[i];
                if (Interlocked.CompareExchange(ref _state[extent], 0, Logged) != Logged)
                {
                    Relog(removed);
                    throw new InvalidOperationException($"cannot clear the activity log: extent {extent} still has writes in flight (End them first)");
                }

                _removed[removed++] = extent;
            }

            try
            {
                _metadata.WriteBitmap(_bitmap);
            }
            catch
            {
                Relog(removed);
                throw;
            }

            // From here the bitmap is durable, so nothing needs to stay logged even if the write fails.
            _loggedCount = 0;
            Volatile.Write(ref _published, []);
            _metadata.WriteActivityLog(new ActivityLogRecord(_sequence + 1, ReadOnlyMemory<uint>.Empty));
            _sequence++;
        }
        finally
        {
            _gate.Release();
        }
    }

    private async ValueTask BeginSlowAsync(int first, int end, CancellationToken ct)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            // Referenced before anything is decided, so that none of the range is chosen for removal.
            for (var extent = first; extent < end; extent++)
            {
                Interlocked.Increment(ref _state[extent]);
            }

            try
            {
                while (!TryAddMissing(first, end, out var idleNeeded, out var flushNeeded))
                {
                    if (flushNeeded)
                    {
                        await _flushEveryCopy!(ct).ConfigureAwait(false);
                    }
                    else
                    {
                        await WaitForIdleAsync(idleNeeded, ct).ConfigureAwait(false);
                    }
                }
            }
            catch
            {
                Release(first, end);
                throw;
            }

            var now = Stopwatch.GetTimestamp();
            for (var extent = first; extent < end; extent++)
            {
                Volatile.Write(ref _lastUsed[extent], now);
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// Logs the extents of the range that are not yet, removing idle ones beyond capacity; false when
    /// idle extents could leave only after a flush (<paramref name="flushNeeded"/>), or with the number
    /// of idle extents still needed when even the slot's maximum would be exceeded.
    /// </summary>
    private bool TryAddMissing(int first, int end, out int idleNeeded, out bool flushNeeded)
    {
        idleNeeded = 0;
        flushNeeded = false;
        var missing = 0;
        for (var extent = first; extent < end; extent++)
        {
            if ((Volatile.Read(ref _state[extent]) & Logged) == 0)
            {
                _missing[missing++] = (uint)extent;
            }
        }

        if (missing == 0)
        {
            return true;
        }

        var excess = _loggedCount + missing - _capacity;
        var removed = 0;
        if (excess > 0)
        {
            removed = Unlog(excess, out var awaitingFlush);
            if (removed < excess && awaitingFlush > 0)
            {
                Relog(removed);
                flushNeeded = true;
                return false;
            }
        }

        if (_loggedCount - removed + missing > ActivityLogRecord.MaxExtents)
        {
            Relog(removed);
            idleNeeded = _loggedCount + missing - ActivityLogRecord.MaxExtents;
            return false;
        }

        try
        {
            WriteBitmapOf(removed);
        }
        catch
        {
            Relog(removed);
            throw;
        }

        var count = 0;
        for (var i = 0; i < _loggedCount; i++)
        {
            if ((Volatile.Read(ref _state[_logged[i]]) & Logged) != 0)
            {
                _nextLogged[count++] = _logged[i];
            }
        }

        var kept = count;
        _missing.AsSpan(0, missing).CopyTo(_nextLogged.AsSpan(count));
        count += missing;
        try
        {
            _metadata.WriteActivityLog(new ActivityLogRecord(_sequence + 1, _nextLogged.AsMemory(0, count)));
        }
        catch
        {
            // The disk holds the old record or the new one; what both have is the kept extents. The
            // removed ones may go either way, their bits being durable.
            _nextLogged.AsSpan(0, kept).CopyTo(_logged);
            _loggedCount = kept;
            Publish();
            throw;
        }

        _sequence++;
        (_logged, _nextLogged) = (_nextLogged, _logged);
        _loggedCount = count;
        for (var i = 0; i < missing; i++)
        {
            Interlocked.Or(ref _state[_missing[i]], Logged);
        }

        Publish();
        return true;
    }

    /// <summary>
    /// Takes up to <paramref name="wanted"/> idle extents whose writes are durable out of the log in memory,
    /// least recently used first, into <see cref="_removed"/>; counts the idle ones that wait for a flush.
    /// </summary>
    private int Unlog(int wanted, out int awaitingFlush)
    {
        var candidates = 0;
        awaitingFlush = 0;
        var flushedThrough = Volatile.Read(ref _flushedThrough);
        for (var i = 0; i < _loggedCount; i++)
        {
            var extent = _logged[i];
            if (Volatile.Read(ref _state[extent]) != Logged)
            {
                continue;
            }

            if (_flushEveryCopy is not null && Volatile.Read(ref _writtenBefore[extent]) >= flushedThrough)
            {
                awaitingFlush++;
                continue;
            }

            _candidates[candidates] = extent;
            _candidateLastUsed[candidates++] = Volatile.Read(ref _lastUsed[extent]);
        }

        Array.Sort(_candidateLastUsed, _candidates, 0, candidates);
        var removed = 0;
        for (var i = 0; i < candidates && removed < wanted; i++)
        {
            // Fails when a writer took a reference since the scan: the extent stays.
            if (Interlocked.CompareExchange(ref _state[_candidates[i]], 0, Logged) == Logged)
            {
                _removed[removed++] = _candidates[i];
            }
        }

        return removed;
    }

    private void Relog(int removed)
    {
        for (var i = 0; i < removed; i++)
        {
            Interlocked.Or(ref _state[_removed[i]], Logged);
        }
    }

    /// <summary>Makes the dirty bits of the removed extents durable, one write per cluster of nearby extents.</summary>
    private void WriteBitmapOf(int removed)
    {
        if (removed == 0)
        {
            return;
        }

        Array.Sort(_removed, 0, removed);
        var (runFirst, runEnd) = BlockRange(_removed[0]);
        for (var i = 1; i < removed; i++)
        {
            var (first, end) = BlockRange(_removed[i]);
            if (first > runEnd + BitmapBlocksPerPage)
            {
                _metadata.WriteBitmapRange(_bitmap, runFirst, runEnd - runFirst);
                runFirst = first;
            }

            runEnd = end;
        }

        _metadata.WriteBitmapRange(_bitmap, runFirst, runEnd - runFirst);
    }

    private (long First, long End) BlockRange(uint extent)
    {
        var offset = (long)extent * ExtentSize;
        var end = Math.Min(offset + ExtentSize, _volumeSize);
        return (offset / _bitmap.BlockSize, (end + _bitmap.BlockSize - 1) / _bitmap.BlockSize);
    }

    private async Task WaitForIdleAsync(int needed, CancellationToken ct)
    {
        var idle = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        // Published before counting, both with full fences: an End that makes an extent idle after the
        // count sees the waiter, and one before it is counted.
        Interlocked.Exchange(ref _idleWaiter, idle);
        try
        {
            var count = 0;
            for (var i = 0; i < _loggedCount; i++)
            {
                if (Volatile.Read(ref _state[_logged[i]]) == Logged)
                {
                    count++;
                }
            }

            if (count < needed)
            {
                await idle.Task.WaitAsync(ct).ConfigureAwait(false);
            }
        }
        finally
        {
            Volatile.Write(ref _idleWaiter, null);
        }
    }

    private void Release(int first, int end)
    {
        for (var extent = first; extent < end; extent++)
        {
            var state = Interlocked.Decrement(ref _state[extent]);
            if ((state & ReferenceMask) == ReferenceMask)
            {
                Interlocked.Increment(ref _state[extent]);
                ThrowUnbalanced(extent);
            }

            if (state == Logged && Volatile.Read(ref _idleWaiter) is { } waiter)
            {
                waiter.TrySetResult();
            }
        }
    }

    private void Publish()
    {
        var extents = _logged.AsSpan(0, _loggedCount).ToArray();
        Array.Sort(extents);
        Volatile.Write(ref _published, extents);
    }

    /// <summary>The extents [First, End) a byte range touches; empty for a zero length.</summary>
    private (int First, int End) ExtentRange(long offset, long length)
    {
        if (offset < 0 || length < 0 || offset > _volumeSize - length)
        {
            ThrowOutsideVolume(offset, length);
        }

        var first = (int)(offset / ExtentSize);
        var end = length == 0 ? first : (int)(((offset + length - 1) / ExtentSize) + 1);
        if (end - first > ActivityLogRecord.MaxExtents)
        {
            ThrowTooLong(length);
        }

        return (first, end);
    }

    [DoesNotReturn]
    private void ThrowOutsideVolume(long offset, long length) =>
        throw new ArgumentOutOfRangeException(nameof(offset), $"the range of {length} bytes at {offset} is not inside the volume of {_volumeSize} bytes");

    [DoesNotReturn]
    private static void ThrowTooLong(long length) =>
        throw new ArgumentOutOfRangeException(
            nameof(length), $"a range of {length} bytes touches more than {ActivityLogRecord.MaxExtents} extents of the activity log (split it into pieces of at most {MaxRangeLength} bytes)");

    [DoesNotReturn]
    private static void ThrowUnbalanced(int extent) =>
        throw new InvalidOperationException($"End without BeginAsync on extent {extent} of the activity log");

    /// <summary>Releases the gate; the on-disk log is left as it is (see <see cref="Clear"/>).</summary>
    public void Dispose() => _gate.Dispose();
}
