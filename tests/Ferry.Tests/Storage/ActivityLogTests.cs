using CsCheck;
using Ferry.Storage.Volumes;

namespace Ferry.Tests.Storage;

public sealed class ActivityLogTests : IDisposable
{
    private const long Extent = ActivityLog.ExtentSize;
    private const int Block = 4096;
    private const int BlocksPerExtent = ActivityLog.ExtentSize / Block;

    private readonly TempDirectory _dir = new();

    /// <summary>One step of a random history: a Begin (a write, zero or trim, maybe marking its range dirty), an End of a held range, or a Clear.</summary>
    private sealed record Operation(int Kind, double Where, long Length, bool Mark, int Pick);

    private static readonly Gen<Operation> AnyOperation =
        Gen.Select(Gen.Int[0, 9], Gen.Double[0, 1], Gen.Long[0, 3 * Extent], Gen.Bool, Gen.Int[0, 1000], (kind, where, length, mark, pick) => new Operation(kind, where, length, mark, pick));

    [Fact]
    public async Task The_least_recently_used_idle_extent_leaves_and_a_referenced_one_stays()
    {
        using var copy = Copy.Create(_dir, 16 * Extent);
        using var log = new ActivityLog(copy.Metadata, copy.Bitmap, copy.Size, capacity: 4);
        await log.BeginAsync(0, Block, default); // held throughout: the oldest, but never removed
        for (var extent = 1; extent <= 3; extent++)
        {
            await Write(log, extent * Extent, Block);
        }

        Assert.Equal([0u, 1u, 2u, 3u], log.ActiveExtents);
        await Write(log, Extent + Block, Block); // 1 is used again: 2 is now the least recently used idle extent

        await Write(log, 4 * Extent, Block);
        Assert.Equal([0u, 1u, 3u, 4u], log.ActiveExtents);
        Assert.Equal([0u, 1u, 3u, 4u], OnDiskLog(copy.Metadata));

        log.End(0, Block);
        await Write(log, 5 * Extent, Block);
        Assert.Equal([1u, 3u, 4u, 5u], log.ActiveExtents);
    }

    [Fact]
    public async Task A_range_across_extents_logs_them_all_with_one_record()
    {
        using var copy = Copy.Create(_dir, 16 * Extent);
        using var log = new ActivityLog(copy.Metadata, copy.Bitmap, copy.Size, capacity: 4);
        var before = copy.Metadata.ReadActivityLog()?.Sequence ?? 0;
        await log.BeginAsync(Extent - Block, (2 * Extent) + (2 * Block), default);
        Assert.Equal([0u, 1u, 2u, 3u], OnDiskLog(copy.Metadata));
        Assert.Equal(before + 1, copy.Metadata.ReadActivityLog()?.Sequence);
        log.End(Extent - Block, (2 * Extent) + (2 * Block));
    }

    [Fact]
    public async Task Dirty_bits_of_a_leaving_extent_are_on_disk_and_only_its_bitmap_pages_are_written()
    {
        using var copy = Copy.Create(_dir, 128 * Extent); // one 4 KiB bitmap page per 32 extents
        using var log = new ActivityLog(copy.Metadata, copy.Bitmap, copy.Size, capacity: 2);
        await Write(log, (0 * Extent) + (2 * Block), Block, copy.Bitmap);
        await Write(log, (32 * Extent) + (2 * Block), Block, copy.Bitmap);
        Assert.Equal(0, copy.Metadata.ReadBitmap().CountDirty());

        await Write(log, 64 * Extent, Block);
        Assert.Equal([32u, 64u], OnDiskLog(copy.Metadata));
        var disk = copy.Metadata.ReadBitmap();
        Assert.True(disk.IsDirty(2));
        Assert.Equal(1, disk.CountDirty()); // extent 32's mark is on another page and still covered by the log
    }

    [Fact]
    public async Task With_every_extent_busy_the_log_grows_past_capacity_then_shrinks_back()
    {
        using var copy = Copy.Create(_dir, 16 * Extent);
        using var log = new ActivityLog(copy.Metadata, copy.Bitmap, copy.Size, capacity: 2);
        for (var extent = 0; extent < 3; extent++)
        {
            await log.BeginAsync(extent * Extent, Block, default);
        }

        Assert.Equal(3, log.ActiveCount);
        for (var extent = 0; extent < 3; extent++)
        {
            log.End(extent * Extent, Block);
        }

        await Write(log, 3 * Extent, Block);
        Assert.Equal([2u, 3u], log.ActiveExtents);
    }

    [Fact]
    public async Task Past_the_slot_maximum_a_begin_waits_until_references_drop_and_cancelling_it_leaks_none()
    {
        const long all = ActivityLogRecord.MaxExtents * Extent;
        using var copy = Copy.Create(_dir, all + Extent);
        using var log = new ActivityLog(copy.Metadata, copy.Bitmap, copy.Size, capacity: 4);
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await log.BeginAsync(Block, all, default));
        await Write(log, Extent - 1, ActivityLog.MaxRangeLength);

        await log.BeginAsync(0, all, default);
        Assert.Equal(ActivityLogRecord.MaxExtents, log.ActiveCount);

        using (var cts = new CancellationTokenSource())
        {
            var cancelled = log.BeginAsync(all, Block, cts.Token).AsTask();
            Assert.False(cancelled.IsCompleted);
            await cts.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        }

        var waiting = log.BeginAsync(all, Block, default).AsTask();
        Assert.False(waiting.IsCompleted);
        log.End(Extent, Extent); // one idle extent is all it needs
        await waiting.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(ActivityLogRecord.MaxExtents, log.ActiveCount);
        Assert.Contains((uint)ActivityLogRecord.MaxExtents, log.ActiveExtents);
        Assert.DoesNotContain(1u, log.ActiveExtents);

        log.End(0, Extent);
        log.End(2 * Extent, all - (2 * Extent));
        log.End(all, Block);
        log.Clear();
        Assert.Empty(OnDiskLog(copy.Metadata));
    }

    [Fact]
    public async Task Clear_refuses_while_a_reference_is_held_then_persists_the_bitmap_and_empties_the_log()
    {
        using var copy = Copy.Create(_dir, 16 * Extent);
        using var log = new ActivityLog(copy.Metadata, copy.Bitmap, copy.Size, capacity: 4);
        await log.BeginAsync(Extent, Block, default);
        copy.Bitmap.Mark(Extent, Block);
        Assert.Throws<InvalidOperationException>(log.Clear);
        Assert.Equal([1u], OnDiskLog(copy.Metadata));

        log.End(Extent, Block);
        log.Clear();
        Assert.Empty(OnDiskLog(copy.Metadata));
        Assert.Equal(0, log.ActiveCount);
        Assert.True(copy.Metadata.ReadBitmap().IsDirty(BlocksPerExtent));

        await Write(log, Extent, Block); // still usable
        Assert.Equal([1u], OnDiskLog(copy.Metadata));
    }

    [Fact]
    public async Task A_new_log_continues_the_on_disk_sequence_so_its_records_win()
    {
        using var copy = Copy.Create(_dir, 16 * Extent);
        copy.Metadata.WriteActivityLog(new ActivityLogRecord(8, new uint[] { 3 }));
        using var log = new ActivityLog(copy.Metadata, copy.Bitmap, copy.Size);
        Assert.Equal(0, log.ActiveCount); // the old extents are not taken over (Recover folds them in)

        await Write(log, Extent, Block);
        Assert.Equal(9UL, copy.Metadata.ReadActivityLog()?.Sequence);
        Assert.Equal([1u], OnDiskLog(copy.Metadata));
    }

    [Fact]
    public void Recover_marks_exactly_the_blocks_of_logged_extents_inside_the_volume()
    {
        var size = (2 * Extent) + (3 * Block); // the last extent is three blocks long
        using var copy = Copy.Create(_dir, size);
        Assert.Equal(0, ActivityLog.Recover(copy.Metadata, copy.Metadata.ReadBitmap()));

        copy.Metadata.WriteActivityLog(new ActivityLogRecord(5, new uint[] { 2, 0, 9 })); // 9: past the end, e.g. after a shrink
        var bitmap = copy.Metadata.ReadBitmap();
        Assert.Equal(2, ActivityLog.Recover(copy.Metadata, bitmap));

        Assert.Equal(BlocksPerExtent + 3, bitmap.CountDirty());
        for (long block = 0; block < bitmap.Blocks; block++)
        {
            Assert.Equal(block < BlocksPerExtent || block >= 2 * BlocksPerExtent, bitmap.IsDirty(block));
        }

        Assert.Equal(bitmap.CountDirty(), copy.Metadata.ReadBitmap().CountDirty()); // written back
    }

    [Fact]
    public async Task Begin_and_End_on_logged_extents_allocate_nothing()
    {
        using var copy = Copy.Create(_dir, 16 * Extent);
        using var log = new ActivityLog(copy.Metadata, copy.Bitmap, copy.Size);
        await Write(log, 0, 2 * Extent);
        await Write(log, 100, 2 * Block);

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1000; i++)
        {
            var begin = log.BeginAsync(i * 64L, 2 * Block, default);
            if (!begin.IsCompletedSuccessfully)
            {
                Assert.Fail("a begin on logged extents did not complete synchronously");
            }

            log.End(i * 64L, 2 * Block);
        }

        Assert.Equal(before, GC.GetAllocatedBytesForCurrentThread());
    }

    [Fact]
    public async Task Ranges_outside_the_volume_or_longer_than_a_slot_are_refused()
    {
        using var copy = Copy.Create(_dir, 16 * Extent);
        using var log = new ActivityLog(copy.Metadata, copy.Bitmap, copy.Size);
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await log.BeginAsync(16 * Extent, 1, default));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await log.BeginAsync(-1, 1, default));
        await log.BeginAsync(16 * Extent, 0, default); // an empty range at the end touches nothing
        log.End(16 * Extent, 0);
        Assert.Throws<InvalidOperationException>(() => log.End(0, 1));
    }

    /// <summary>
    /// Random writes, then a crash (reopening the metadata file): the on-disk bitmap plus the logged
    /// extents cover every block marked in memory and every extent with a reference held, and Recover
    /// turns that into marks.
    /// </summary>
    [Fact]
    public Task A_crash_at_any_point_loses_no_dirty_block() =>
        Gen.Select(Gen.Int[1, 40], Gen.Int[0, 3], Gen.Int[1, 5], AnyOperation.Array[1, 30]).SampleAsync(async (extents, shortBy, capacity, operations) =>
        {
            var size = Math.Max(Block, (extents * Extent) - (shortBy * Block));
            using var copy = Copy.Create(_dir, size);
            var held = new List<(long Offset, long Length)>();
            using (var log = new ActivityLog(copy.Metadata, copy.Bitmap, size, capacity))
            {
                foreach (var op in operations)
                {
                    if (op.Kind < 5 || (held.Count == 0 && op.Kind < 9))
                    {
                        var offset = Math.Min((long)(op.Where * size), size - 1);
                        var length = Math.Min(op.Length, size - offset);
                        await log.BeginAsync(offset, length, default);
                        held.Add((offset, length));
                        if (op.Mark)
                        {
                            copy.Bitmap.Mark(offset, length);
                        }
                    }
                    else if (held.Count > 0)
                    {
                        var (offset, length) = held[op.Pick % held.Count];
                        held.RemoveAt(op.Pick % held.Count);
                        log.End(offset, length);
                    }
                    else
                    {
                        log.Clear();
                    }
                }

                if (!log.ActiveExtents.SequenceEqual(OnDiskLog(copy.Metadata)))
                {
                    return false;
                }
            }

            return CrashLosesNothing(copy, held);
        }, iter: 60);

    [Fact]
    public async Task An_extent_leaves_only_once_a_flush_of_every_copy_covered_its_last_write_and_one_flush_frees_many()
    {
        using var copy = Copy.Create(_dir, 16 * Extent);
        var flushes = new FlushCounter();
        using var log = new ActivityLog(copy.Metadata, copy.Bitmap, copy.Size, capacity: 2, flushEveryCopy: flushes.FlushAsync);
        flushes.Log = log;
        await Write(log, 0, Block);
        await Write(log, Extent, Block);

        // Neither extent's write is durable: the log has every copy flushed, then lets the older one go.
        await Write(log, 2 * Extent, Block);
        Assert.Equal(1, flushes.Count);
        Assert.Equal([1u, 2u], OnDiskLog(copy.Metadata));

        // Extent 1 was written before that flush: it leaves without another.
        await Write(log, 3 * Extent, Block);
        Assert.Equal(1, flushes.Count);
        Assert.Equal([2u, 3u], OnDiskLog(copy.Metadata));

        // A flush the guest asked for counts the same.
        await flushes.FlushAsync(default);
        await Write(log, 4 * Extent, Block);
        await Write(log, 5 * Extent, Block);
        Assert.Equal(2, flushes.Count);
        Assert.Equal([4u, 5u], OnDiskLog(copy.Metadata));

        // A write that ends after a flush began is not covered by it.
        var ticket = log.BeginFlush();
        await Write(log, 4 * Extent, Block);
        log.FlushDone(ticket);
        await Write(log, 6 * Extent, Block);
        Assert.Equal(2, flushes.Count);
        Assert.Equal([4u, 6u], OnDiskLog(copy.Metadata)); // 5 was covered; 4 was not
        await Write(log, 7 * Extent, Block);
        Assert.Equal(3, flushes.Count);
        Assert.Equal([6u, 7u], OnDiskLog(copy.Metadata));
    }

    /// <summary>
    /// Random writes and flushes: every extent with a write that no completed flush covers is in the on-disk
    /// log at every step, so a crash of every copy at once leaves nothing outside the log that one has and another lost.
    /// </summary>
    [Fact]
    public Task Every_extent_written_since_the_last_flush_is_in_the_on_disk_log() =>
        Gen.Select(Gen.Int[1, 12], Gen.Int[1, 4], AnyOperation.Array[1, 40]).SampleAsync(async (extents, capacity, operations) =>
        {
            var size = extents * Extent;
            using var copy = Copy.Create(_dir, size);
            var flushes = new FlushCounter();
            using var log = new ActivityLog(copy.Metadata, copy.Bitmap, size, capacity, flushes.FlushAsync);
            flushes.Log = log;
            var held = new List<(long Offset, long Length)>();
            foreach (var op in operations)
            {
                if (op.Kind < 5 || (held.Count == 0 && op.Kind < 8))
                {
                    var offset = Math.Min((long)(op.Where * size), size - 1);
                    var length = Math.Max(1, Math.Min(op.Length, size - offset));
                    await log.BeginAsync(offset, length, default);
                    held.Add((offset, length));
                }
                else if (held.Count > 0 && op.Kind < 9)
                {
                    var (offset, length) = held[op.Pick % held.Count];
                    held.RemoveAt(op.Pick % held.Count);
                    log.End(offset, length);
                    flushes.Unflushed.UnionWith(Enumerable.Range((int)(offset / Extent), (int)(((offset + length - 1) / Extent) - (offset / Extent) + 1)).Select(e => (uint)e));
                }
                else
                {
                    await flushes.FlushAsync(default);
                }

                var logged = OnDiskLog(copy.Metadata);
                if (!flushes.Unflushed.All(e => logged.Contains(e)))
                {
                    return false;
                }
            }

            return true;
        }, iter: 100);

    /// <summary>A flush of every copy, as the replicated volume reports it to its log; counts them.</summary>
    private sealed class FlushCounter
    {
        public ActivityLog? Log { get; set; }

        public int Count { get; private set; }

        /// <summary>Extents whose last write no flush has covered yet.</summary>
        public HashSet<uint> Unflushed { get; } = [];

        public ValueTask FlushAsync(CancellationToken ct)
        {
            var ticket = Log!.BeginFlush();
            Unflushed.Clear();
            Log.FlushDone(ticket);
            Count++;
            return default;
        }
    }

    [Fact]
    public async Task Concurrent_writers_always_find_their_extents_in_the_on_disk_log()
    {
        const int extents = 12;
        using var copy = Copy.Create(_dir, extents * Extent);
        using var log = new ActivityLog(copy.Metadata, copy.Bitmap, copy.Size, capacity: 3);
        var writers = Enumerable.Range(0, 6).Select(seed => Task.Run(async () =>
        {
            var random = new Random(seed);
            for (var i = 0; i < 40; i++)
            {
                var offset = random.NextInt64(extents * Extent);
                var length = Math.Min(random.NextInt64(1, 2 * Extent), (extents * Extent) - offset);
                await log.BeginAsync(offset, length, default);
                var logged = OnDiskLog(copy.Metadata);
                for (var extent = offset / Extent; extent <= (offset + length - 1) / Extent; extent++)
                {
                    Assert.Contains((uint)extent, logged);
                }

                copy.Bitmap.Mark(offset, length);
                await Task.Yield();
                log.End(offset, length);
            }
        })).ToArray();
        await Task.WhenAll(writers);

        Assert.True(CrashLosesNothing(copy, []));
    }

    private static async Task Write(ActivityLog log, long offset, long length, DirtyBitmap? mark = null)
    {
        await log.BeginAsync(offset, length, default);
        mark?.Mark(offset, length);
        log.End(offset, length);
    }

    private static uint[] OnDiskLog(MetadataFile metadata)
    {
        var extents = metadata.ReadActivityLog()?.Extents.ToArray() ?? [];
        Array.Sort(extents);
        return extents;
    }

    /// <summary>Reopens the metadata file as after a crash and checks the invariant the activity log keeps.</summary>
    private static bool CrashLosesNothing(Copy copy, IReadOnlyList<(long Offset, long Length)> held)
    {
        copy.Metadata.Dispose();
        using var reopened = MetadataFile.Open(copy.Path).Value;
        var disk = reopened.ReadBitmap();
        var logged = OnDiskLog(reopened);
        for (long block = 0; block < copy.Bitmap.Blocks; block++)
        {
            if (copy.Bitmap.IsDirty(block) && !disk.IsDirty(block) && Array.BinarySearch(logged, (uint)(block / BlocksPerExtent)) < 0)
            {
                return false;
            }
        }

        foreach (var (offset, length) in held)
        {
            for (var extent = offset / Extent; length > 0 && extent <= (offset + length - 1) / Extent; extent++)
            {
                if (Array.BinarySearch(logged, (uint)extent) < 0)
                {
                    return false;
                }
            }
        }

        ActivityLog.Recover(reopened, disk);
        for (long block = 0; block < copy.Bitmap.Blocks; block++)
        {
            if (copy.Bitmap.IsDirty(block) && !disk.IsDirty(block))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>One volume copy's metadata file and in-memory bitmap, in its own file under the test directory.</summary>
    private sealed class Copy : IDisposable
    {
        private Copy(string path, long size, MetadataFile metadata)
        {
            Path = path;
            Size = size;
            Metadata = metadata;
            Bitmap = metadata.ReadBitmap();
        }

        public string Path { get; }

        public long Size { get; }

        public MetadataFile Metadata { get; }

        public DirtyBitmap Bitmap { get; }

        public static Copy Create(TempDirectory dir, long size)
        {
            var path = System.IO.Path.Combine(dir.Path, Guid.NewGuid().ToString("N"));
            var metadata = MetadataFile.Create(path, new Superblock { VolumeId = Guid.NewGuid(), Name = "v", Size = size, CreatedAt = DateTimeOffset.UnixEpoch });
            return new Copy(path, size, metadata);
        }

        public void Dispose()
        {
            Metadata.Dispose();
            File.Delete(Path);
        }
    }

    public void Dispose() => _dir.Dispose();
}
