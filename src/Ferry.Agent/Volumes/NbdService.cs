using System.Net;
using Ferry.Storage.Nbd;
using Microsoft.Extensions.Hosting;

namespace Ferry.Agent.Volumes;

/// <summary>Serves the host's volumes over NBD: a Unix socket for local QEMU, and TCP when configured.</summary>
internal sealed class NbdService(NbdServer server, AgentOptions options) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await server.ListenUnixAsync(options.NbdSocket, cancellationToken).ConfigureAwait(false);
        if (options.NbdListen is { } listen)
        {
            await server.ListenTcpAsync(IPEndPoint.Parse(listen), cancellationToken).ConfigureAwait(false);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => server.DisposeAsync().AsTask();
}
