using System.Globalization;
using Ferry.Storage;
using Ferry.Storage.Nbd;
using Microsoft.Extensions.Logging.Abstractions;

namespace Ferry.IntegrationTests.Nbd;

/// <summary>
/// The hot path allocates nothing per request: a real client (fio, in its own process) drives a short and
/// a long run of requests through the in-process server. Each run has the same fixed cost (a connection,
/// starting fio, reading its output), so the difference between them is what the extra requests cost.
/// Tests in this assembly run one at a time, so nothing else allocates meanwhile.
/// </summary>
public sealed class AllocationTests
{
    private const int ShortRun = 5_000;
    private const int LongRun = 45_000;

    [ReleaseFact]
    public async Task Steady_state_requests_allocate_nothing()
    {
        var directory = Path.Combine(Path.GetTempPath(), "ferry-alloc-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(directory);
        var image = Path.Combine(directory, "export.img");
        await using (var file = File.Create(image))
        {
            file.SetLength(64 << 20);
        }

        using var device = FileBlockDevice.Open(image, readOnly: false);
        var server = new NbdServer(new NbdExportList(new NbdExport("disk", string.Empty, device)), NullLogger<NbdServer>.Instance);
        try
        {
            var socket = Path.Combine(directory, "nbd.sock");
            await server.ListenUnixAsync(socket, CancellationToken.None);
            string[] Fio(int requests) =>
            [
                "--name=alloc", "--ioengine=nbd", $"--uri=nbd+unix:///disk?socket={socket}", "--rw=randrw", "--bs=4k",
                "--iodepth=16", "--size=64M", "--fsync=64", $"--number_ios={requests}",
            ];

            async Task<long> AllocatedDuringAsync(int requests)
            {
                var before = GC.GetTotalAllocatedBytes(precise: true);
                await NbdTools.RunAsync("fio", Fio(requests));
                return GC.GetTotalAllocatedBytes(precise: true) - before;
            }

            // The first run warms the buffer pool, the work items and the JIT. The long run is measured
            // twice and the smaller count taken: a one-time cost (a tier-up compilation, a queue growing)
            // lands in one of them, a per-request cost in both.
            await AllocatedDuringAsync(ShortRun);
            var shortRun = await AllocatedDuringAsync(ShortRun);
            var longRun = Math.Min(await AllocatedDuringAsync(LongRun), await AllocatedDuringAsync(LongRun));
            var perRequest = (double)(longRun - shortRun) / (LongRun - ShortRun);

            // Even one small object per request would be 24 bytes or more; the few bytes a request may show
            // on average are incidental one-time costs (a thread starting, a timer) spread over 40,000 requests.
            Assert.True(perRequest < 4, string.Create(CultureInfo.InvariantCulture, $"{perRequest:0.00} bytes allocated per request ({shortRun} bytes for {ShortRun} requests, {longRun} for {LongRun})"));
        }
        finally
        {
            await server.DisposeAsync();
            Directory.Delete(directory, recursive: true);
        }
    }
}

/// <summary>A fact that runs only in optimized builds: debug builds compile async methods into classes, which allocate per call.</summary>
public sealed class ReleaseFactAttribute : FactAttribute
{
    public ReleaseFactAttribute()
    {
#if DEBUG
        Skip = "allocation counts are meaningful only in Release builds (scripts/test.sh builds Release)";
#endif
    }
}
