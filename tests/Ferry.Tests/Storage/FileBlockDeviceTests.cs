using Ferry.Storage;

namespace Ferry.Tests.Storage;

/// <summary>The sparse-file block device on a real file in the temp directory.</summary>
public sealed class FileBlockDeviceTests : IDisposable
{
    private const long Size = 4 << 20;

    private readonly TempDirectory _dir = new();
    private readonly string _path;
    private readonly FileBlockDevice _device;

    public FileBlockDeviceTests()
    {
        _path = CreateSparse("disk.img", Size);
        _device = FileBlockDevice.Open(_path, readOnly: false);
    }

    public void Dispose()
    {
        _device.Dispose();
        _dir.Dispose();
    }

    private string CreateSparse(string name, long size)
    {
        var path = Path.Combine(_dir.Path, name);
        using var file = File.Create(path);
        file.SetLength(size);
        return path;
    }

    private static byte[] Pattern(int length, byte seed)
    {
        var data = new byte[length];
        for (var i = 0; i < data.Length; i++)
        {
            data[i] = (byte)(seed + (i * 7));
        }

        return data;
    }

    private async Task<byte[]> ReadAsync(long offset, int length)
    {
        var buffer = new byte[length];
        await _device.ReadAsync(offset, buffer, CancellationToken.None);
        return buffer;
    }

    private async Task<AllocationExtent[]> MapAsync(long offset, long length)
    {
        var extents = new AllocationExtent[64];
        var count = await _device.MapAsync(offset, length, extents, CancellationToken.None);
        return extents[..count];
    }

    [Fact]
    public async Task Reports_size_and_modes()
    {
        Assert.Equal(Size, _device.Size);
        Assert.False(_device.IsReadOnly);
        Assert.True(_device.FlushIsGlobal);
        await _device.FlushAsync(CancellationToken.None);
    }

    [Fact]
    public async Task Reads_back_what_was_written_at_unaligned_offsets()
    {
        var data = Pattern(10_000, 3);
        await _device.WriteAsync(12_345, data, fua: true, CancellationToken.None);

        Assert.Equal(data, await ReadAsync(12_345, data.Length));
        Assert.Equal(new byte[100], await ReadAsync(12_245, 100));
    }

    [Fact]
    public async Task A_new_file_is_one_hole_that_reads_as_zeroes()
    {
        Assert.Equal([new AllocationExtent(Size, AllocationFlags.Hole | AllocationFlags.Zero)], await MapAsync(0, Size));
        Assert.Equal(new byte[4096], await ReadAsync(Size - 4096, 4096));
    }

    [Fact]
    public async Task Map_reports_data_between_holes_and_stays_within_the_range()
    {
        await _device.WriteAsync(1 << 20, Pattern(65536, 1), fua: false, CancellationToken.None);

        var map = await MapAsync(0, Size);
        Assert.Equal(
            [
                new AllocationExtent(1 << 20, AllocationFlags.Hole | AllocationFlags.Zero),
                new AllocationExtent(65536, AllocationFlags.Data),
                new AllocationExtent(Size - (1 << 20) - 65536, AllocationFlags.Hole | AllocationFlags.Zero),
            ],
            map);

        // A range inside the data, and a limit on the number of extents.
        Assert.Equal([new AllocationExtent(4096, AllocationFlags.Data)], await MapAsync((1 << 20) + 4096, 4096));
        var one = new AllocationExtent[1];
        Assert.Equal(1, await _device.MapAsync(0, Size, one, CancellationToken.None));
        Assert.Equal(new AllocationExtent(1 << 20, AllocationFlags.Hole | AllocationFlags.Zero), one[0]);
    }

    [Fact]
    public async Task Trim_punches_a_hole_that_reads_as_zeroes()
    {
        await _device.WriteAsync(0, Pattern(3 * 65536, 9), fua: false, CancellationToken.None);
        await _device.TrimAsync(65536, 65536, fua: true, CancellationToken.None);

        Assert.Equal(new byte[65536], await ReadAsync(65536, 65536));
        Assert.Equal(Pattern(65536, 9), await ReadAsync(0, 65536));
        var map = await MapAsync(0, 3 * 65536);
        Assert.Equal(new AllocationExtent(65536, AllocationFlags.Hole | AllocationFlags.Zero), map[1]);
    }

    [Theory]
    [InlineData(WriteZeroesFlags.None)]
    [InlineData(WriteZeroesFlags.NoHole)]
    [InlineData(WriteZeroesFlags.FastZero)]
    [InlineData(WriteZeroesFlags.NoHole | WriteZeroesFlags.FastZero | WriteZeroesFlags.Fua)]
    public async Task Write_zeroes_zeroes_the_range_only(WriteZeroesFlags flags)
    {
        await _device.WriteAsync(0, Pattern(3 * 65536, 5), fua: false, CancellationToken.None);
        await _device.WriteZeroesAsync(65536 + 100, 1000, flags, CancellationToken.None);

        var expected = Pattern(3 * 65536, 5);
        Array.Clear(expected, 65536 + 100, 1000);
        Assert.Equal(expected, await ReadAsync(0, expected.Length));
    }

    [Fact]
    public async Task Write_zeroes_with_no_hole_keeps_the_range_allocated()
    {
        await _device.WriteAsync(0, Pattern(65536, 5), fua: false, CancellationToken.None);
        var before = AllocatedBlocks(_path);
        await _device.WriteZeroesAsync(0, 65536, WriteZeroesFlags.NoHole, CancellationToken.None);

        // ext4 keeps ZERO_RANGE blocks as unwritten extents, which SEEK_DATA may call a hole; the space stays allocated.
        Assert.Equal(before, AllocatedBlocks(_path));
        Assert.Equal(new byte[65536], await ReadAsync(0, 65536));

        await _device.WriteZeroesAsync(0, 65536, WriteZeroesFlags.None, CancellationToken.None);
        Assert.True(AllocatedBlocks(_path) < before);
    }

    private static long AllocatedBlocks(string path)
    {
        using var stat = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("stat", ["-c", "%b", path]) { RedirectStandardOutput = true })!;
        var output = stat.StandardOutput.ReadToEnd();
        stat.WaitForExit();
        return long.Parse(output, System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task A_read_only_device_refuses_writes()
    {
        using var device = FileBlockDevice.Open(CreateSparse("ro.img", 65536), readOnly: true);

        Assert.True(device.IsReadOnly);
        var e = await Assert.ThrowsAsync<BlockDeviceException>(async () => await device.WriteAsync(0, new byte[512], fua: false, CancellationToken.None));
        Assert.Equal(BlockError.ReadOnly, e.Error);
        e = await Assert.ThrowsAsync<BlockDeviceException>(async () => await device.TrimAsync(0, 512, fua: false, CancellationToken.None));
        Assert.Equal(BlockError.ReadOnly, e.Error);
    }

    [Fact]
    public async Task A_full_device_reports_no_space()
    {
        // /dev/full fails every write with ENOSPC.
        using var device = FileBlockDevice.Open("/dev/full", readOnly: false);

        var e = await Assert.ThrowsAsync<BlockDeviceException>(async () => await device.WriteAsync(0, new byte[512], fua: false, CancellationToken.None));
        Assert.Equal(BlockError.NoSpace, e.Error);
    }

    [Fact]
    public void Opening_a_missing_file_throws()
    {
        Assert.Throws<FileNotFoundException>(() => FileBlockDevice.Open(Path.Combine(_dir.Path, "missing.img"), readOnly: false));
    }

    [Fact]
    public async Task A_range_is_a_hole_only_where_no_data_was_written()
    {
        await _device.WriteAsync(1 << 20, Pattern(4096, 1), fua: false, CancellationToken.None);

        Assert.True(_device.IsHole(0, 1 << 20));
        Assert.False(_device.IsHole(0, (1 << 20) + 4096));
        Assert.False(_device.IsHole(1 << 20, 4096));
        Assert.True(_device.IsHole(2 << 20, 1 << 20));
        Assert.True(_device.IsHole(Size - 4096, 1 << 20)); // past the end counts as hole
    }
}
