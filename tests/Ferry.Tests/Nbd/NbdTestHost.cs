using Ferry.Storage.Nbd;
using Microsoft.Extensions.Logging.Abstractions;

namespace Ferry.Tests.Nbd;

/// <summary>The server in-process on a Unix socket over in-memory devices ("disk", and "ro" read-only); ready when created.</summary>
internal sealed class NbdTestHost : IAsyncDisposable
{
    private readonly TempDirectory _dir = new();

    private NbdTestHost(int size)
    {
        Device = new MemoryBlockDevice(size);
        ReadOnlyDevice = new MemoryBlockDevice(size, readOnly: true);
        Server = new NbdServer(
            new NbdExportList(new NbdExport("disk", "in memory", Device), new NbdExport("ro", "read-only", ReadOnlyDevice)),
            NullLogger<NbdServer>.Instance,
            new NbdServerOptions { MaxRequestsInFlight = 4 });
    }

    public MemoryBlockDevice Device { get; }

    public MemoryBlockDevice ReadOnlyDevice { get; }

    public NbdServer Server { get; }

    public string SocketPath => Path.Combine(_dir.Path, "nbd.sock");

    public static async Task<NbdTestHost> StartAsync(int size = 1 << 20)
    {
        var host = new NbdTestHost(size);
        await host.Server.ListenUnixAsync(host.SocketPath, CancellationToken.None);
        return host;
    }

    public Task<NbdTestClient> OpenAsync(string export = "disk", bool structured = true, bool metaContext = true) =>
        NbdTestClient.OpenAsync(SocketPath, export, structured, metaContext);

    public Task<NbdTestClient> ConnectAsync() => NbdTestClient.ConnectAsync(SocketPath);

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        _dir.Dispose();
    }
}
