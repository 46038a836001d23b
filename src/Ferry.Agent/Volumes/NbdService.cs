using System.Net;
using System.Security.Cryptography.X509Certificates;
using Ferry.Storage.Nbd;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Ferry.Agent.Volumes;

/// <summary>
/// Serves the host's volumes over NBD: a Unix socket for local QEMU (local clients are trusted through
/// the socket's file permissions), and TCP when configured, where a configured certificate makes TLS
/// mandatory (STARTTLS). Two servers, so that the TLS requirement applies to TCP only.
/// </summary>
internal sealed class NbdService(INbdExportProvider exports, AgentOptions options, ILogger<NbdServer> logger) : IHostedService, IAsyncDisposable
{
    private NbdServer? _local;
    private NbdServer? _remote;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        _local = new NbdServer(exports, logger);
        await _local.ListenUnixAsync(options.NbdSocket, CancellationToken.None).ConfigureAwait(false);
        if (options.NbdListen is { } listen)
        {
            var certificate = options.NbdTlsCertificate is { } cert
                ? X509Certificate2.CreateFromPemFile(cert, options.NbdTlsKey)
                : null;
            _remote = new NbdServer(exports, logger, new NbdServerOptions { TlsCertificate = certificate, RequireTls = certificate is not null });
            await _remote.ListenTcpAsync(IPEndPoint.Parse(listen), CancellationToken.None).ConfigureAwait(false);
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken) => await DisposeAsync().ConfigureAwait(false);

    public async ValueTask DisposeAsync()
    {
        // Stopping and disposing both come here; each server is let go once.
        foreach (var server in new[] { Interlocked.Exchange(ref _remote, null), Interlocked.Exchange(ref _local, null) })
        {
            if (server is not null)
            {
                await server.DisposeAsync().ConfigureAwait(false);
            }
        }
    }
}
