using Ferry.Storage;
using Ferry.Storage.Volumes;
using Microsoft.Extensions.Logging.Abstractions;

namespace Ferry.Tests.Storage;

public sealed class VolumeStoreTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    private VolumeStore Open() => VolumeStore.Open(_dir.Path, TimeProvider.System, NullLogger.Instance);

    [Fact]
    public async Task A_new_volume_is_sparse_and_survives_a_reopen()
    {
        Guid id;
        using (var store = Open())
        {
            var info = (await store.CreateAsync("vol1", 1L << 30, default)).Value;
            Assert.Equal(1L << 30, info.Size);
            Assert.Equal(0, info.Allocated);
            Assert.NotEqual(0UL, info.Generations.Current);
            id = info.Id;
        }

        using var reopened = Open();
        var again = (await reopened.InfoAsync("vol1", default)).Value;
        Assert.Equal(id, again.Id);
        Assert.Equal(1L << 30, again.Size);
    }

    [Fact]
    public async Task Written_data_is_allocated_and_read_back_after_a_reopen()
    {
        var data = new byte[64 * 1024];
        Random.Shared.NextBytes(data);
        using (var store = Open())
        {
            await store.CreateAsync("vol1", 16L << 20, default);
            Assert.True(store.TryGet("vol1", out var volume));
            await volume.WriteAsync(1 << 20, data, fua: true, default);
            Assert.Equal(data.Length, (await store.InfoAsync("vol1", default)).Value.Allocated);
        }

        using var reopened = Open();
        Assert.True(reopened.TryGet("vol1", out var again));
        var read = new byte[data.Length];
        await again.ReadAsync(1 << 20, read, default);
        Assert.Equal(data, read);
    }

    [Theory]
    [InlineData("Vol", 4096, ErrorCode.InvalidArgument)]
    [InlineData("vol", 0, ErrorCode.InvalidArgument)]
    [InlineData("vol", -4096, ErrorCode.InvalidArgument)]
    [InlineData("vol", 4097, ErrorCode.InvalidArgument)]
    [InlineData("vol", 1L << 51, ErrorCode.InvalidArgument)]
    public async Task Bad_names_and_sizes_are_refused_and_nothing_is_left(string name, long size, ErrorCode code)
    {
        using var store = Open();
        Assert.Equal(code, (await store.CreateAsync(name, size, default)).Error?.Code);
        Assert.Empty(Directory.EnumerateFileSystemEntries(_dir.Path));
    }

    [Fact]
    public async Task A_duplicate_name_is_a_conflict()
    {
        using var store = Open();
        await store.CreateAsync("vol", 4096, default);
        Assert.Equal(ErrorCode.Conflict, (await store.CreateAsync("vol", 8192, default)).Error?.Code);
        Assert.Equal(4096, (await store.InfoAsync("vol", default)).Value.Size);
    }

    [Fact]
    public async Task Growing_keeps_the_data_and_shrinking_needs_permission()
    {
        using var store = Open();
        await store.CreateAsync("vol", 1 << 20, default);
        store.TryGet("vol", out var volume);
        await volume!.WriteAsync(0, new byte[] { 1, 2, 3 }, fua: false, default);

        Assert.Equal(4L << 20, (await store.ResizeAsync("vol", 4L << 20, allowShrink: false, default)).Value.Size);
        Assert.Equal(4L << 20, new FileInfo(volume.DataPath).Length);
        Assert.Equal(ErrorCode.InvalidArgument, (await store.ResizeAsync("vol", 1 << 20, allowShrink: false, default)).Error?.Code);
        Assert.Equal(1L << 20, (await store.ResizeAsync("vol", 1 << 20, allowShrink: true, default)).Value.Size);

        var read = new byte[3];
        await volume.ReadAsync(0, read, default);
        Assert.Equal(new byte[] { 1, 2, 3 }, read);

        // The allocation map follows the new size: grown space is one hole up to the new end.
        await store.ResizeAsync("vol", 8L << 20, allowShrink: false, default);
        var extents = new AllocationExtent[4];
        var count = await volume.MapAsync(1 << 20, 7L << 20, extents, default);
        Assert.Equal(7L << 20, extents.Take(count).Sum(e => e.Length));
        Assert.Equal(ErrorCode.NotFound, (await store.ResizeAsync("nope", 4096, false, default)).Error?.Code);
    }

    [Fact]
    public async Task An_interrupted_resize_is_settled_by_the_superblock_on_open()
    {
        using (var store = Open())
        {
            await store.CreateAsync("vol", 1 << 20, default);
        }

        // As if a grow had extended the file but crashed before the superblock was written.
        using (var handle = File.OpenHandle(Path.Combine(_dir.Path, "vol", VolumeStore.DataFileName), FileMode.Open, FileAccess.ReadWrite))
        {
            RandomAccess.SetLength(handle, 8L << 20);
        }

        using var reopened = Open();
        Assert.Equal(1L << 20, (await reopened.InfoAsync("vol", default)).Value.Size);
        Assert.Equal(1L << 20, new FileInfo(Path.Combine(_dir.Path, "vol", VolumeStore.DataFileName)).Length);
    }

    [Fact]
    public async Task Delete_removes_everything_and_io_on_the_old_handle_fails_cleanly()
    {
        using var store = Open();
        await store.CreateAsync("vol", 1 << 20, default);
        store.TryGet("vol", out var volume);
        Assert.Null(await store.DeleteAsync("vol", default));
        Assert.False(Directory.Exists(Path.Combine(_dir.Path, "vol")));
        var error = await Assert.ThrowsAsync<BlockDeviceException>(async () => await volume!.ReadAsync(0, new byte[512], default));
        Assert.Equal(BlockError.Io, error.Error);
        Assert.Equal(ErrorCode.NotFound, (await store.DeleteAsync("vol", default))?.Code);
    }

    [Fact]
    public async Task The_dirty_bitmap_survives_a_reopen_and_a_grow()
    {
        using (var store = Open())
        {
            await store.CreateAsync("vol", 64L << 20, default);
            store.TryGet("vol", out var volume);
            var bitmap = volume!.Metadata.ReadBitmap();
            Assert.Equal(0, bitmap.CountDirty());
            bitmap.Mark(0, 4096);
            bitmap.Mark((64L << 20) - 1, 1);
            volume.Metadata.WriteBitmap(bitmap);
            await store.ResizeAsync("vol", 128L << 20, allowShrink: false, default);
        }

        using var reopened = Open();
        reopened.TryGet("vol", out var again);
        var loaded = again!.Metadata.ReadBitmap();
        Assert.Equal((128L << 20) / 4096, loaded.Blocks);
        Assert.Equal(2, loaded.CountDirty());
        Assert.True(loaded.IsDirty(0));
        Assert.True(loaded.IsDirty(((64L << 20) / 4096) - 1));
    }

    [Fact]
    public void A_directory_without_metadata_or_with_a_damaged_one_is_skipped()
    {
        Directory.CreateDirectory(Path.Combine(_dir.Path, "half-made"));
        Directory.CreateDirectory(Path.Combine(_dir.Path, "damaged"));
        File.WriteAllBytes(Path.Combine(_dir.Path, "damaged", VolumeStore.MetadataFileName), new byte[8192]);
        File.WriteAllBytes(Path.Combine(_dir.Path, "damaged", VolumeStore.DataFileName), new byte[4096]);
        using var store = Open();
        Assert.Empty(store.Volumes);
    }

    public void Dispose() => _dir.Dispose();
}
