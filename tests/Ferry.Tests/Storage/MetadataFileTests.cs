using Ferry.Storage.Volumes;

namespace Ferry.Tests.Storage;

public sealed class MetadataFileTests : IDisposable
{
    private const int BlocksPerBitmapPage = 4096 * 8;

    private readonly TempDirectory _dir = new();

    private string MetaPath => Path.Combine(_dir.Path, "meta");

    private MetadataFile Create(long size) =>
        MetadataFile.Create(MetaPath, new Superblock { VolumeId = Guid.NewGuid(), Name = "v", Size = size, CreatedAt = DateTimeOffset.UnixEpoch });

    [Fact]
    public void A_new_file_has_no_activity_log_and_its_bitmap_follows_the_log_slots()
    {
        using (var meta = Create(512L << 20))
        {
            Assert.Null(meta.ReadActivityLog());
            Assert.Equal(0, meta.ReadBitmap().CountDirty());
        }

        Assert.Equal(8192, MetadataFile.ActivityLogOffset);
        Assert.Equal(16384, MetadataFile.BitmapOffset);
        Assert.Equal(MetadataFile.BitmapOffset + (4 * 4096), new FileInfo(MetaPath).Length);
    }

    [Fact]
    public void The_file_holds_its_blocks_from_the_start_so_a_full_disk_cannot_fail_its_writes()
    {
        Create(512L << 20).Dispose();
        Assert.True(AllocatedBytes() >= new FileInfo(MetaPath).Length);

        // A file made sparse (as before space was reserved) gets its blocks when opened.
        using (var file = File.OpenHandle(MetaPath, FileMode.Open, FileAccess.ReadWrite))
        {
            Assert.Equal(0, Ferry.Storage.LinuxFile.Fallocate(file, Ferry.Storage.LinuxFile.FallocPunchHole | Ferry.Storage.LinuxFile.FallocKeepSize, MetadataFile.BitmapOffset, 4096));
        }

        Assert.True(AllocatedBytes() < new FileInfo(MetaPath).Length);
        MetadataFile.Open(MetaPath).Value.Dispose();
        Assert.True(AllocatedBytes() >= new FileInfo(MetaPath).Length);
    }

    /// <summary>The file system's blocks held by the file (st_blocks, in 512-byte units).</summary>
    private long AllocatedBytes()
    {
        using var stat = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("stat", ["-c", "%b", MetaPath]) { RedirectStandardOutput = true })!;
        var blocks = long.Parse(stat.StandardOutput.ReadToEnd().Trim(), System.Globalization.CultureInfo.InvariantCulture);
        stat.WaitForExit();
        return blocks * 512;
    }

    [Fact]
    public void Activity_log_versions_alternate_slots_and_a_torn_newest_falls_back_to_the_older()
    {
        using (var meta = Create(64L << 20))
        {
            meta.WriteActivityLog(new ActivityLogRecord(1, new uint[] { 4 }));
            meta.WriteActivityLog(new ActivityLogRecord(2, new uint[] { 4, 5 }));
            Assert.Equal(2UL, meta.ReadActivityLog()?.Sequence);
        }

        using (var file = File.OpenHandle(MetaPath, FileMode.Open, FileAccess.ReadWrite))
        {
            var offset = MetadataFile.ActivityLogOffset + (ActivityLogRecord.SlotFor(2) * ActivityLogRecord.SlotSize) + 24;
            var b = new byte[1];
            RandomAccess.Read(file, b, offset);
            b[0] ^= 0x01;
            RandomAccess.Write(file, b, offset);
        }

        using var reopened = MetadataFile.Open(MetaPath).Value;
        var survivor = reopened.ReadActivityLog();
        Assert.Equal(1UL, survivor?.Sequence);
        Assert.Equal([4u], survivor!.Value.Extents.ToArray());
    }

    [Fact]
    public void The_bitmap_and_the_activity_log_do_not_overlap()
    {
        using var meta = Create(64L << 20);
        meta.WriteActivityLog(new ActivityLogRecord(1, new uint[] { 1, 2, 3 }));
        var bitmap = meta.ReadBitmap();
        bitmap.MarkAll();
        meta.WriteBitmap(bitmap);
        Assert.Equal([1u, 2u, 3u], meta.ReadActivityLog()!.Value.Extents.ToArray());

        meta.WriteActivityLog(new ActivityLogRecord(2, new uint[ActivityLogRecord.MaxExtents]));
        meta.WriteActivityLog(new ActivityLogRecord(3, new uint[ActivityLogRecord.MaxExtents]));
        Assert.Equal(bitmap.Blocks, meta.ReadBitmap().CountDirty());
    }

    [Fact]
    public void A_bitmap_range_writes_only_the_pages_holding_its_blocks()
    {
        using var meta = Create(512L << 20); // 4 pages of bitmap
        var bitmap = meta.ReadBitmap();
        bitmap.Mark(5 * 4096L, 1);
        bitmap.Mark((BlocksPerBitmapPage + 7) * 4096L, 1);
        bitmap.Mark(((3 * BlocksPerBitmapPage) + 9) * 4096L, 1);

        meta.WriteBitmapRange(bitmap, BlocksPerBitmapPage + 100, 10);
        var disk = meta.ReadBitmap();
        Assert.Equal(1, disk.CountDirty());
        Assert.True(disk.IsDirty(BlocksPerBitmapPage + 7));

        // A range across a page boundary writes both pages.
        meta.WriteBitmapRange(bitmap, BlocksPerBitmapPage - 1, 2);
        Assert.True(meta.ReadBitmap().IsDirty(5));
        Assert.Equal(2, meta.ReadBitmap().CountDirty());

        meta.WriteBitmapRange(bitmap, bitmap.Blocks - 1, 1);
        Assert.Equal(3, meta.ReadBitmap().CountDirty());
        Assert.Throws<ArgumentOutOfRangeException>(() => meta.WriteBitmapRange(bitmap, bitmap.Blocks - 1, 2));
    }

    public void Dispose() => _dir.Dispose();
}
