using System.Net;
using System.Security.Cryptography.X509Certificates;
using Ferry.Storage;
using Ferry.Storage.Nbd;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace Ferry.IntegrationTests.Nbd;

/// <summary>
/// The real NBD server in-process over a sparse file in a temp directory, listening on a Unix socket and on TCP
/// (loopback, ephemeral port). Listening is complete when <see cref="StartAsync"/> returns. Disposing stops the
/// server and deletes the directory, pass or fail.
/// </summary>
public sealed class NbdTestServer : IAsyncDisposable
{
    public const string ExportName = "disk";

    private readonly FileBlockDevice _device;

    private NbdTestServer(string directory, FileBlockDevice device, NbdServer server)
    {
        Directory = directory;
        _device = device;
        Server = server;
    }

    public string Directory { get; }

    public string ImagePath => Path.Combine(Directory, "export.img");

    public string SocketPath => Path.Combine(Directory, "nbd.sock");

    public NbdServer Server { get; }

    public int Port => Server.TcpEndpoint!.Port;

    public string UnixUri => $"nbd+unix:///{ExportName}?socket={SocketPath}";

    public string TcpUri => $"nbd://127.0.0.1:{Port}/{ExportName}";

    public static async Task<NbdTestServer> StartAsync(ITestOutputHelper output, long size = 64 << 20, bool readOnly = false, X509Certificate2? tls = null)
    {
        var directory = Path.Combine(Path.GetTempPath(), "ferry-nbd-" + Guid.NewGuid().ToString("N")[..12]);
        System.IO.Directory.CreateDirectory(directory);
        var image = Path.Combine(directory, "export.img");
        using (var file = File.Create(image))
        {
            file.SetLength(size);
        }

        var device = FileBlockDevice.Open(image, readOnly);
        var exports = new NbdExportList(new NbdExport(ExportName, "test export", device), new NbdExport("second", string.Empty, device));
        var server = new NbdServer(exports, new TestLogger<NbdServer>(output), new NbdServerOptions { TlsCertificate = tls, RequireTls = tls is not null });
        var test = new NbdTestServer(directory, device, server);
        try
        {
            await server.ListenUnixAsync(test.SocketPath, CancellationToken.None);
            await server.ListenTcpAsync(new IPEndPoint(IPAddress.Loopback, 0), CancellationToken.None);
            return test;
        }
        catch
        {
            await test.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        _device.Dispose();
        System.IO.Directory.Delete(Directory, recursive: true);
    }

    /// <summary>A file of the given size in the test directory with a distinct pattern in every 64 KiB, and holes between.</summary>
    public string CreatePatternFile(string name, long size, int seed = 1)
    {
        var path = Path.Combine(Directory, name);
        using var file = File.Create(path);
        file.SetLength(size);
        var block = new byte[65536];
        for (long offset = 0; offset < size; offset += 3 * block.Length)
        {
            Random.Shared.NextBytes(block);
            block[0] = (byte)seed;
            file.Position = offset;
            file.Write(block, 0, (int)Math.Min(block.Length, size - offset));
        }

        return path;
    }
}

/// <summary>Server logs in the test's output.</summary>
internal sealed class TestLogger<T>(ITestOutputHelper output) : ILogger<T>
{
    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Debug;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        try
        {
            output.WriteLine($"{logLevel}: {formatter(state, exception)}{(exception is null ? string.Empty : " " + exception)}");
        }
        catch (InvalidOperationException)
        {
            // The test already finished; a late log line has nowhere to go.
        }
    }
}
