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
    public async Task Steady_state_requests_allocate_no_buffers_tasks_or_state_machines()
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

            // The first run warms the buffer pool, the work items and the JIT.
            await AllocatedDuringAsync(ShortRun);
            var shortRun = await AllocatedDuringAsync(ShortRun);
            var longRun = await AllocatedDuringAsync(LongRun);
            var perRequest = (double)(longRun - shortRun) / (LongRun - ShortRun);

            // A buffer per request would be 4 KiB or more, a Task or async state machine per request over
            // 100 bytes. What remains is a thread-pool work item (about 40-60 bytes) allocated when an idle
            // reply writer or a waiting reader is woken, which happens for a fraction of the requests.
            Assert.True(perRequest < 48, string.Create(CultureInfo.InvariantCulture, $"{perRequest:0.00} bytes allocated per request ({shortRun} bytes for {ShortRun} requests, {longRun} for {LongRun})"));
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
