using System.Net;
using System.Net.Sockets;
using Ferry.Storage.Nbd;
using Microsoft.Extensions.Logging.Abstractions;

namespace Ferry.Tests.Nbd;

/// <summary>The server's lifecycle: listening, stale sockets, disposal with clients attached.</summary>
public sealed class NbdServerTests : IDisposable
{
    private readonly TempDirectory _dir = new();
    private readonly NbdExportList _exports = new(new NbdExport("disk", string.Empty, new MemoryBlockDevice(65536)));

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Listening_replaces_a_stale_socket_file_and_removes_it_when_done()
    {
        var path = Path.Combine(_dir.Path, "nbd.sock");
        using (var stale = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            stale.Bind(new UnixDomainSocketEndPoint(path)); // closing leaves the file behind
        }

        await using (var server = new NbdServer(_exports, NullLogger<NbdServer>.Instance))
        {
            await server.ListenUnixAsync(path, CancellationToken.None);
            await using var client = await NbdTestClient.OpenAsync(path);
            Assert.Equal(65536UL, client.Size);
        }

        Assert.False(File.Exists(path));
    }

    [Fact]
    public async Task Tcp_listening_reports_the_bound_port()
    {
        await using var server = new NbdServer(_exports, NullLogger<NbdServer>.Instance);
        Assert.Null(server.TcpEndpoint);

        await server.ListenTcpAsync(new IPEndPoint(IPAddress.Loopback, 0), CancellationToken.None);

        Assert.NotEqual(0, server.TcpEndpoint!.Port);
        await using var client = await NbdTestClient.ConnectAsync(server.TcpEndpoint);
        await client.ReadGreetingAsync();
    }

    [Fact]
    public async Task Disposing_ends_attached_and_negotiating_clients()
    {
        var path = Path.Combine(_dir.Path, "nbd.sock");
        var server = new NbdServer(_exports, NullLogger<NbdServer>.Instance);
        await server.ListenUnixAsync(path, CancellationToken.None);
        await using var attached = await NbdTestClient.OpenAsync(path);
        await using var negotiating = await NbdTestClient.ConnectAsync(path);
        await negotiating.ReadGreetingAsync();

        await server.DisposeAsync();

        Assert.True(await attached.IsClosedByServerAsync());
        Assert.True(await negotiating.IsClosedByServerAsync());
    }

    [Fact]
    public async Task Cancelling_the_listen_token_stops_accepting()
    {
        var path = Path.Combine(_dir.Path, "nbd.sock");
        await using var server = new NbdServer(_exports, NullLogger<NbdServer>.Instance);
        using var cts = new CancellationTokenSource();
        await server.ListenUnixAsync(path, cts.Token);

        await cts.CancelAsync();

        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (File.Exists(path))
        {
            await Task.Delay(10, deadline.Token); // the accept loop removes the socket as it stops
        }

        await Assert.ThrowsAsync<SocketException>(async () => await NbdTestClient.ConnectAsync(path));
    }
}
