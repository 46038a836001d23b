using System.Text.Json;
using Xunit.Abstractions;

namespace Ferry.IntegrationTests.Nbd;

/// <summary>libnbd's tools (nbdinfo, nbdcopy) and fio's nbd engine against the server, over a Unix socket and over TCP.</summary>
public sealed class LibnbdInteropTests(ITestOutputHelper output)
{
    public static TheoryData<bool> Transports => new() { true, false };

    private static string Uri(NbdTestServer server, bool unix) => unix ? server.UnixUri : server.TcpUri;

    [Theory]
    [MemberData(nameof(Transports))]
    public async Task Nbdinfo_lists_both_exports(bool unix)
    {
        await using var server = await NbdTestServer.StartAsync(output);

        using var json = JsonDocument.Parse(await NbdTools.RunAsync("nbdinfo", "--list", "--json", Uri(server, unix)));

        var exports = json.RootElement.GetProperty("exports").EnumerateArray().ToDictionary(e => e.GetProperty("export-name").GetString()!);
        Assert.Equal(["disk", "second"], exports.Keys.Order());
        Assert.Equal("test export", exports["disk"].GetProperty("description").GetString());
        Assert.Equal(64 << 20, exports["disk"].GetProperty("export-size").GetInt64());
    }

    [Fact]
    public async Task Nbdinfo_sees_the_negotiated_features_and_sizes()
    {
        await using var server = await NbdTestServer.StartAsync(output);

        using var json = JsonDocument.Parse(await NbdTools.RunAsync("nbdinfo", "--json", server.UnixUri));

        var root = json.RootElement;
        Assert.Equal("newstyle-fixed", root.GetProperty("protocol").GetString());
        Assert.True(root.GetProperty("structured").GetBoolean());
        var export = root.GetProperty("exports")[0];
        Assert.Equal(1, export.GetProperty("block_size_minimum").GetInt64());
        Assert.Equal(4096, export.GetProperty("block_size_preferred").GetInt64());
        Assert.Equal(32 << 20, export.GetProperty("block_size_maximum").GetInt64());
        Assert.Contains("base:allocation", export.GetProperty("contexts").EnumerateArray().Select(c => c.GetString()));
        Assert.False(export.GetProperty("is_read_only").GetBoolean());
    }

    [Theory]
    [InlineData("connect")]
    [InlineData("read")]
    [InlineData("write")]
    [InlineData("flush")]
    [InlineData("fua")]
    [InlineData("trim")]
    [InlineData("zero")]
    [InlineData("fast-zero")]
    [InlineData("cache")]
    [InlineData("multi-conn")]
    [InlineData("structured-reply")]
    [InlineData("df")]
    public async Task Nbdinfo_can(string feature)
    {
        await using var server = await NbdTestServer.StartAsync(output);

        await NbdTools.RunAsync("nbdinfo", "--can", feature, server.UnixUri);
    }

    [Fact]
    public async Task Nbdinfo_sees_a_read_only_export()
    {
        await using var server = await NbdTestServer.StartAsync(output, readOnly: true);

        await NbdTools.RunAsync("nbdinfo", "--is", "read-only", server.UnixUri);
        foreach (var feature in new[] { "write", "trim", "zero" })
        {
            var result = await Processes.RunAsync("nbdinfo", ["--can", feature, server.UnixUri], TimeSpan.FromSeconds(30));
            Assert.True(result.ExitCode == 2, $"--can {feature} exited {result.ExitCode}: {result.StandardError}");
        }
    }

    [Theory]
    [MemberData(nameof(Transports))]
    public async Task Nbdinfo_maps_data_and_holes(bool unix)
    {
        await using var server = await NbdTestServer.StartAsync(output, size: 16 << 20);
        var uri = Uri(server, unix);
        await NbdTools.QemuIoAsync(uri, "write -P 7 4M 1M", "write -P 8 8M 1M", "discard 8M 512k");

        using var json = JsonDocument.Parse(await NbdTools.RunAsync("nbdinfo", "--map", "--json", uri));

        // type is the base:allocation state: 0 data, 3 hole and zero.
        var map = json.RootElement.EnumerateArray().Select(e => (e.GetProperty("offset").GetInt64(), e.GetProperty("length").GetInt64(), e.GetProperty("type").GetInt32())).ToArray();
        Assert.Equal(
            [
                (0L, 4L << 20, 3),
                (4L << 20, 1L << 20, 0),
                (5L << 20, (3L << 20) + (512 << 10), 3),
                ((8L << 20) + (512 << 10), 512 << 10, 0),
                (9L << 20, 7L << 20, 3),
            ],
            Merge(map));
    }

    [Theory]
    [MemberData(nameof(Transports))]
    public async Task Nbdcopy_copies_in_and_out(bool unix)
    {
        await using var server = await NbdTestServer.StartAsync(output, size: 32 << 20);
        var source = server.CreatePatternFile("source.raw", 32 << 20, seed: 5);
        var copy = Path.Combine(server.Directory, "copy.raw");
        var uri = Uri(server, unix);

        await NbdTools.RunAsync("nbdcopy", "--flush", source, uri);
        await NbdTools.RunAsync("nbdcopy", uri, copy);

        Assert.Equal(await File.ReadAllBytesAsync(source), await File.ReadAllBytesAsync(copy));
        Assert.Equal(await File.ReadAllBytesAsync(source), await File.ReadAllBytesAsync(server.ImagePath));
    }

    [Theory]
    [MemberData(nameof(Transports))]
    public async Task Fio_random_writes_verify_with_crc32c(bool unix)
    {
        await using var server = await NbdTestServer.StartAsync(output, size: 32 << 20);

        var result = await NbdTools.RunAsync("fio", "--name=nbd-verify", "--ioengine=nbd", $"--uri={Uri(server, unix)}",
            "--rw=randwrite", "--bsrange=4k-256k", "--size=32M", "--iodepth=16", "--verify=crc32c", "--verify_fatal=1",
            "--do_verify=1", "--randseed=7", "--output-format=terse");

        output.WriteLine(result);
        Assert.DoesNotContain("verify:", result, StringComparison.Ordinal);
    }

    /// <summary>Joins neighbouring extents of the same type; servers may split extents anywhere.</summary>
    private static (long Offset, long Length, int Type)[] Merge((long Offset, long Length, int Type)[] map)
    {
        var merged = new List<(long Offset, long Length, int Type)>();
        foreach (var extent in map)
        {
            if (merged.Count > 0 && merged[^1].Type == extent.Type && merged[^1].Offset + merged[^1].Length == extent.Offset)
            {
                merged[^1] = (merged[^1].Offset, merged[^1].Length + extent.Length, extent.Type);
            }
            else
            {
                merged.Add(extent);
            }
        }

        return [.. merged];
    }
}
