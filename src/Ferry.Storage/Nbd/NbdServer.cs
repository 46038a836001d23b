using System.Buffers;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace Ferry.Storage.Nbd;

/// <summary>
/// An NBD server (fixed newstyle, structured replies, base:allocation, optional STARTTLS) over the exports of an
/// <see cref="INbdExportProvider"/>. <see cref="ListenUnixAsync"/> and <see cref="ListenTcpAsync"/> return once the
/// socket is listening (a client may connect as soon as they complete) and accept in the background until their token
/// is cancelled or the server is disposed; <see cref="DisposeAsync"/> stops accepting, ends every connection and waits
/// for all of it.
/// </summary>
public sealed class NbdServer : IAsyncDisposable
{
    private readonly INbdExportProvider _exports;
    private readonly ILogger<NbdServer> _logger;
    private readonly NbdServerOptions _options;
    private readonly CancellationTokenSource _lifetime = new();
    private readonly ConcurrentDictionary<long, Task> _running = new();

    // Payload buffers of every connection: up to 32 MiB each, a few kept per size for reuse.
    private readonly ArrayPool<byte> _pool = ArrayPool<byte>.Create((int)NbdWire.MaxPayload, maxArraysPerBucket: 16);
    private long _nextId;
    private long _nextTask;

    public NbdServer(INbdExportProvider exports, ILogger<NbdServer> logger, NbdServerOptions? options = null)
    {
        _exports = exports;
        _logger = logger;
        _options = options ?? new NbdServerOptions();
        if (_options.RequireTls && _options.TlsCertificate is null)
        {
            throw new ArgumentException("RequireTls needs a TlsCertificate", nameof(options));
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(_options.MaxRequestsInFlight, 1, nameof(options));
    }

    /// <summary>The bound TCP endpoint (with the real port when asked for port 0), once <see cref="ListenTcpAsync"/> returned.</summary>
    public IPEndPoint? TcpEndpoint { get; private set; }

    /// <summary>Listens on a Unix socket, replacing a stale socket file; returns once listening (see the class remarks).</summary>
    public Task ListenUnixAsync(string socketPath, CancellationToken ct)
    {
        if (File.Exists(socketPath) && (File.GetAttributes(socketPath) & FileAttributes.Directory) == 0)
        {
            File.Delete(socketPath);
        }

        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            listener.Bind(new UnixDomainSocketEndPoint(socketPath));
            listener.Listen(128);
        }
        catch
        {
            listener.Dispose();
            throw;
        }

        Start(listener, socketPath, ct);
        return Task.CompletedTask;
    }

    /// <summary>Listens on TCP; returns once listening, with <see cref="TcpEndpoint"/> set (see the class remarks).</summary>
    public Task ListenTcpAsync(IPEndPoint endpoint, CancellationToken ct)
    {
        var listener = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            listener.Bind(endpoint);
            listener.Listen(128);
        }
        catch
        {
            listener.Dispose();
            throw;
        }

        TcpEndpoint = (IPEndPoint)listener.LocalEndPoint!;
        Start(listener, null, ct);
        return Task.CompletedTask;
    }

    /// <summary>Serves one connected client until it leaves; takes ownership of the socket. Peer behaviour never makes it throw.</summary>
    public async Task ServeConnectionAsync(Socket socket, CancellationToken ct)
    {
        var id = Interlocked.Increment(ref _nextId);
        NbdLog.Accepted(_logger, id, socket.RemoteEndPoint?.ToString() is { Length: > 0 } remote ? remote : "a local socket");
        if (socket.ProtocolType == ProtocolType.Tcp)
        {
            socket.NoDelay = true; // replies are complete messages; do not hold them back
        }

        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, _lifetime.Token);
        await using var connection = new NbdConnection(id, socket, _exports, _options, _pool, _logger);
        await connection.RunAsync(linked.Token).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        if (_lifetime.IsCancellationRequested)
        {
            return;
        }

        await _lifetime.CancelAsync().ConfigureAwait(false);
        while (!_running.IsEmpty)
        {
            await Task.WhenAll(_running.Values).ConfigureAwait(false);
        }

        _lifetime.Dispose();
    }

    private void Start(Socket listener, string? socketPath, CancellationToken ct)
    {
        var endpoint = socketPath ?? listener.LocalEndPoint!.ToString()!;
        NbdLog.Listening(_logger, endpoint);
        Track(static s => s.Server.AcceptLoopAsync(s.Listener, s.Endpoint, s.SocketPath, s.Ct), (Server: this, Listener: listener, Endpoint: endpoint, SocketPath: socketPath, Ct: ct));
    }

    private async Task AcceptLoopAsync(Socket listener, string endpoint, string? socketPath, CancellationToken ct)
    {
        await Task.Yield(); // Listen* returns before the first accept
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, _lifetime.Token);
        try
        {
            while (!linked.IsCancellationRequested)
            {
                Socket client;
                try
                {
                    client = await listener.AcceptAsync(linked.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
                catch (SocketException e)
                {
                    NbdLog.AcceptFailed(_logger, endpoint, e);
                    continue;
                }

                Track(static s => s.Server.ServeConnectionAsync(s.Client, s.Ct), (Server: this, Client: client, Ct: linked.Token));
            }
        }
        finally
        {
            listener.Dispose();
            if (socketPath is not null)
            {
                File.Delete(socketPath);
            }
        }
    }

    /// <summary>Runs background work the server owns, keeping its task until it ends so that <see cref="DisposeAsync"/> can wait for it.</summary>
    private void Track<TState>(Func<TState, Task> work, TState state)
    {
        var key = Interlocked.Increment(ref _nextTask);
        var task = RunTrackedAsync(key, work, state);
        _running.TryAdd(key, task);
        if (task.IsCompleted)
        {
            _running.TryRemove(key, out _);
        }
    }

    private async Task RunTrackedAsync<TState>(long key, Func<TState, Task> work, TState state)
    {
        try
        {
            await work(state).ConfigureAwait(false);
        }
        finally
        {
            _running.TryRemove(key, out _);
        }
    }
}
