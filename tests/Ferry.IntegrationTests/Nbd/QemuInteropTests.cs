using System.Text.Json;
using Xunit.Abstractions;

namespace Ferry.IntegrationTests.Nbd;

/// <summary>QEMU's NBD client (qemu-img, qemu-io) against the server, over a Unix socket and over TCP.</summary>
public sealed class QemuInteropTests(ITestOutputHelper output)
{
    public static TheoryData<bool> Transports => new() { true, false };

    private static string Uri(NbdTestServer server, bool unix) => unix ? server.UnixUri : server.TcpUri;

    [Theory]
    [MemberData(nameof(Transports))]
    public async Task Qemu_img_info_sees_the_export_size(bool unix)
    {
        await using var server = await NbdTestServer.StartAsync(output, size: 48 << 20);

        var json = await NbdTools.RunAsync("qemu-img", "info", "--output=json", Uri(server, unix));

        using var info = JsonDocument.Parse(json);
        Assert.Equal(48 << 20, info.RootElement.GetProperty("virtual-size").GetInt64());
    }

    [Theory]
    [MemberData(nameof(Transports))]
    public async Task Qemu_img_converts_in_and_out_and_compares_equal(bool unix)
    {
        await using var server = await NbdTestServer.StartAsync(output, size: 16 << 20);
        var source = server.CreatePatternFile("source.raw", 16 << 20);
        var copy = Path.Combine(server.Directory, "copy.raw");
        var uri = Uri(server, unix);

        await NbdTools.RunAsync("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", source, uri);
        await NbdTools.RunAsync("qemu-img", "compare", "-f", "raw", "-F", "raw", source, uri);
        await NbdTools.RunAsync("qemu-img", "convert", "-f", "raw", "-O", "raw", uri, copy);

        Assert.Equal(await File.ReadAllBytesAsync(source), await File.ReadAllBytesAsync(copy));
    }

    [Theory]
    [MemberData(nameof(Transports))]
    public async Task Qemu_io_writes_reads_discards_zeroes_and_flushes(bool unix)
    {
        await using var server = await NbdTestServer.StartAsync(output, size: 8 << 20);

        await NbdTools.QemuIoAsync(Uri(server, unix),
            "write -P 0xab 0 4M",
            "write -f -P 0xcd 4M 1M",
            "read -P 0xab 0 4M",
            "read -P 0xcd 4M 1M",
            "discard 1M 1M",
            "read -P 0 1M 1M",
            "write -z 2M 512k",
            "read -P 0 2M 512k",
            "read -P 0xab 2560k 1536k",
            "write -P 0x11 1000 3000",
            "read -P 0x11 1000 3000",
            "aio_write -P 0x22 6M 64k",
            "aio_write -P 0x33 7M 64k",
            "aio_flush",
            "read -P 0x22 6M 64k",
            "read -P 0x33 7M 64k");

        // What the client wrote is in the file, byte for byte.
        var image = await File.ReadAllBytesAsync(server.ImagePath);
        Assert.All(image[..1000], b => Assert.Equal(0xab, b));
        Assert.All(image[1000..4000], b => Assert.Equal(0x11, b));
        Assert.All(image[(1 << 20)..(2 << 20)], b => Assert.Equal(0, b));
        Assert.All(image[(4 << 20)..(5 << 20)], b => Assert.Equal(0xcd, b));
    }

    [Fact]
    public async Task A_read_only_export_refuses_writes()
    {
        await using var server = await NbdTestServer.StartAsync(output, size: 1 << 20, readOnly: true);

        // QEMU sees NBD_FLAG_READ_ONLY and will not even open the export for writing; read-only it works.
        var result = await Processes.RunAsync("qemu-io", ["-f", "raw", "-c", "write -P 1 0 4k", server.UnixUri], TimeSpan.FromSeconds(60));
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("Permission denied", result.StandardError, StringComparison.Ordinal);
        await NbdTools.RunAsync("qemu-io", "-r", "-f", "raw", "-c", "read -P 0 0 4k", server.UnixUri);
        Assert.Equal(new byte[4096], (await File.ReadAllBytesAsync(server.ImagePath))[..4096]);
    }
}
