using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Ferry.Agent.Cluster;
using Ferry.Storage.Replication;
using Ferry.Storage.Replication.Wire;
using Ferry.Storage.Volumes;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Ferry.Agent.Volumes;

/// <summary>
/// Replication for this host's volume copies: one <see cref="ReplicatedVolume"/> per volume, its
/// settings in the volume's directory (replication.json), and the TCP listener primaries connect to.
/// </summary>
internal sealed partial class VolumeReplication(VolumeStore store, ClusterService cluster, AgentOptions options, TimeProvider time, ILoggerFactory loggers) : IHostedService, IAsyncDisposable
{
    public const string SettingsFileName = "replication.json";

    private readonly ConcurrentDictionary<string, ReplicatedVolume> _copies = new(StringComparer.Ordinal);
    private readonly ILogger _logger = loggers.CreateLogger("Ferry.Replication");
    private readonly CancellationTokenSource _stopping = new();
    private readonly FileReplicationAuthority _localAuthority = new(options.AuthorityFile, time);
    private readonly ReplicationTls? _fileTls = ReplicationTls.FromOptions(options);
    private ReplicationTls? _clusterTls;
    private IReplicationAuthority? _authority;
    private TcpListener? _listener;
    private Task? _accepting;

    public string Host => options.HostName;

    public IReplicationAuthority Authority => _authority ??= new ClusterReplicationAuthority(cluster, _localAuthority, time);

    public Task StartAsync(CancellationToken cancellationToken)
    {
        foreach (var volume in store.Volumes)
        {
            Open(volume);
        }

        if (options.ReplicationListen is { } listen)
        {
            _listener = new TcpListener(IPEndPoint.Parse(listen));
            _listener.Start();
            _accepting = AcceptAsync(_listener, _stopping.Token);
            LogListening(_logger, listen, Host);
        }

        return Task.CompletedTask;
    }

    public bool TryGet(string name, [NotNullWhen(true)] out ReplicatedVolume? copy) => _copies.TryGetValue(name, out copy);

    public IReadOnlyList<ReplicatedVolume> Copies => [.. _copies.Values];

    public ReplicatedVolume Open(Volume volume) =>
        _copies[volume.Name] = ReplicatedVolume.Open(volume, LoadSettings(volume), Context());

    /// <summary>Starts replicating a copy the cluster made, with its settings recorded first.</summary>
    public async Task<ReplicatedVolume> OpenManagedAsync(Volume volume, ReplicationSettings settings, CancellationToken ct)
    {
        var path = Path.Combine(volume.Directory, SettingsFileName);
        await DurableFile.WriteAllBytesAsync(path, JsonSerializer.SerializeToUtf8Bytes(settings with { Managed = true }, FerryJson.Options), ct).ConfigureAwait(false);
        return Open(volume);
    }

    /// <summary>Stops replicating a volume about to be deleted.</summary>
    public async Task CloseAsync(string name)
    {
        if (_copies.TryRemove(name, out var copy))
        {
            await copy.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Records a copy's settings (as they are now, role included) so that it comes back the same after a restart.</summary>
    public static async Task SaveAsync(ReplicatedVolume copy, CancellationToken ct)
    {
        var path = Path.Combine(copy.Volume.Directory, SettingsFileName);
        await DurableFile.WriteAllBytesAsync(path, JsonSerializer.SerializeToUtf8Bytes(copy.Settings, FerryJson.Options), ct).ConfigureAwait(false);
    }

    public VolumeInfo WithCopyState(VolumeInfo info) =>
        _copies.TryGetValue(info.Name, out var copy) ? info with { Copy = copy.CopyState() } : info;

    private static ReplicationSettings LoadSettings(Volume volume)
    {
        var path = Path.Combine(volume.Directory, SettingsFileName);
        return File.Exists(path)
            ? JsonSerializer.Deserialize<ReplicationSettings>(File.ReadAllBytes(path), FerryJson.Options) ?? ReplicationSettings.StandAlone
            : ReplicationSettings.StandAlone with { Role = volume.Metadata.Current.Disk == DiskState.UpToDate ? CopyRole.Primary : CopyRole.Secondary };
    }

    private ReplicationContext Context() => new(Host, Authority, ConnectAsync, time, _logger);

    private async Task<Stream> ConnectAsync(PeerAddress peer, CancellationToken ct)
    {
        var (host, port) = ParseAddress(peer.Address);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(3));
            await socket.ConnectAsync(host, port, timeout.Token).ConfigureAwait(false);
            var stream = new NetworkStream(socket, ownsSocket: true);
            if (Tls() is not { } tls)
            {
                return stream;
            }

            var under = new CoalescingLinkStream(stream, socket);
            var secure = await tls.ClientAsync(under, peer.Host, ct).ConfigureAwait(false);
            under.Coalesce = true;
            return secure;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    internal static (string Host, int Port) ParseAddress(string address)
    {
        var colon = address.LastIndexOf(':');
        return colon > 0 && int.TryParse(address.AsSpan(colon + 1), out var port) && port is > 0 and < 65536
            ? (address[..colon].Trim('[', ']'), port)
            : throw new FormatException($"'{address}' is not host:port");
    }

    private async Task AcceptAsync(TcpListener listener, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptSocketAsync(ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }

            socket.NoDelay = true;
            _ = ServeAsync(socket, ct);
        }
    }

    private async Task ServeAsync(Socket socket, CancellationToken ct)
    {
        var from = socket.RemoteEndPoint?.ToString() ?? "?";
        var tls = Tls();
        await using var owned = new NetworkStream(socket, ownsSocket: true); // owns the socket; the link reads it with blocking calls
        try
        {
            var end = tls is null ? await ServePlainAsync(socket, from, ct).ConfigureAwait(false) : await ServeTlsAsync(socket, tls, from, ct).ConfigureAwait(false);
            LogSessionEnded(_logger, from, end.Reason);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or OperationCanceledException)
        {
            LogSessionEnded(_logger, from, e.Message);
        }
    }

    /// <summary>
    /// A TLS link: the handshake and the session on a thread of their own with blocking reads, as a plain
    /// link is read (the bytes are decrypted in user space, so nothing is spliced), and TLS's records sent
    /// together. A silent peer ends the handshake by the socket's receive timeout.
    /// </summary>
    private Task<ReplicaSessionEnd> ServeTlsAsync(Socket socket, ReplicationTls tls, string from, CancellationToken ct) =>
        LinkReceiver.RunAsync($"replica {from}", async () =>
        {
            var under = new CoalescingLinkStream(new BlockingLinkStream(socket), socket);
            socket.ReceiveTimeout = (int)ReplicationTls.HandshakeTimeout.TotalMilliseconds;
            Stream secure;
            try
            {
                secure = await tls.ServerAsync(under, ct).ConfigureAwait(true);
            }
            catch (Exception e) when (e is IOException or OperationCanceledException)
            {
                return new ReplicaSessionEnd(null, $"refused: {e.Message}");
            }

            socket.ReceiveTimeout = 0;
            under.Coalesce = true;
            await using (secure.ConfigureAwait(true))
            {
                using var session = new ReplicaSession(
                    Resolve, PipeReader.Create(secure, LinkPipes.Reader), PipeWriter.Create(secure, LinkPipes.Writer), from, _logger,
                    splice: null, () => ShutDownReceiving(socket));
                socket.SendTimeout = (int)session.IdleTimeout.TotalMilliseconds;
                return await session.RunAsync(ct).ConfigureAwait(true);
            }
        });

    /// <summary>A plain TCP link: read on a thread of its own with blocking calls, large writes spliced into the copy's file.</summary>
    private async Task<ReplicaSessionEnd> ServePlainAsync(Socket socket, string from, CancellationToken ct)
    {
        var io = new BlockingLinkStream(socket);
        using var session = new ReplicaSession(
            Resolve, PipeReader.Create(io, LinkPipes.Reader), PipeWriter.Create(io, LinkPipes.Writer), from, _logger,
            LinkSplice.TryCreate(socket), () => ShutDownReceiving(socket));
        socket.SendTimeout = (int)session.IdleTimeout.TotalMilliseconds; // a primary that reads nothing for as long is gone
        return await LinkReceiver.RunAsync($"replica {from}", () => session.RunAsync(ct)).ConfigureAwait(false);
    }

    private static void ShutDownReceiving(Socket socket)
    {
        try
        {
            socket.Shutdown(SocketShutdown.Receive);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // Closed already: nothing is blocked on it.
        }
    }

    /// <summary>
    /// TLS for a link: the files given to the agent, or else, once the host is in a cluster, its cluster
    /// certificate (peers must be hosts of the cluster); plain TCP only for hosts in no cluster without files.
    /// </summary>
    private ReplicationTls? Tls()
    {
        if (_fileTls is not null)
        {
            return _fileTls;
        }

        if (cluster.HostCertificate is not { } host || cluster.AuthorityCertificate is not { } authority)
        {
            return null;
        }

        var current = Volatile.Read(ref _clusterTls);
        if (current is null || !current.Uses(host))
        {
            current = ReplicationTls.ForCluster(host, authority, cluster.Accepts);
            Volatile.Write(ref _clusterTls, current);
        }

        return current;
    }

    private ReplicatedVolume? Resolve(Guid volumeId) =>
        _copies.Values.FirstOrDefault(c => c.VolumeId == volumeId);

    public async Task StopAsync(CancellationToken cancellationToken) => await DisposeAsync().ConfigureAwait(false);

    public async ValueTask DisposeAsync()
    {
        if (_stopping.IsCancellationRequested)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        _listener?.Stop();
        if (_accepting is not null)
        {
            await _accepting.ConfigureAwait(false);
        }

        foreach (var copy in _copies.Values)
        {
            await copy.DisposeAsync().ConfigureAwait(false);
        }

        _localAuthority.Dispose();
        _fileTls?.Dispose();
    }

    [LoggerMessage(2400, LogLevel.Information, "replication listening on {Address} as host {Host}")]
    private static partial void LogListening(ILogger logger, string address, string host);

    [LoggerMessage(2401, LogLevel.Information, "replication link from {From} ended: {Reason}")]
    private static partial void LogSessionEnded(ILogger logger, string from, string reason);
}
