using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace Ferry.Storage.Nbd;

/// <summary>
/// One client, from greeting to disconnect: option haggling (<c>Handshake.cs</c>), then transmission with one reader
/// that parses and dispatches requests (<c>Transmission.cs</c>) and one writer that sends replies (<c>Replies.cs</c>).
/// Owns the socket; disposing closes it.
/// </summary>
internal sealed partial class NbdConnection : IAsyncDisposable
{
    private static readonly StreamPipeReaderOptions ReaderOptions = new(bufferSize: 64 << 10, minimumReadSize: 16 << 10, leaveOpen: true);
    private static readonly StreamPipeWriterOptions WriterOptions = new(minimumBufferSize: 64 << 10, leaveOpen: true);

    private readonly long _id;
    private readonly Socket _socket;
    private readonly INbdExportProvider _exports;
    private readonly NbdServerOptions _options;
    private readonly ArrayPool<byte> _pool;
    private readonly ILogger _logger;

    private Stream _stream;
    private PipeReader _input;
    private PipeWriter _output;

    public NbdConnection(long id, Socket socket, INbdExportProvider exports, NbdServerOptions options, ArrayPool<byte> pool, ILogger logger)
    {
        _id = id;
        _socket = socket;
        _exports = exports;
        _options = options;
        _pool = pool;
        _logger = logger;
        _stream = new NetworkStream(socket, ownsSocket: false);
        _input = PipeReader.Create(_stream, ReaderOptions);
        _output = PipeWriter.Create(_stream, WriterOptions);
        _slots = new NbdSlotGate(options.MaxRequestsInFlight);
    }

    /// <summary>Serves the client until it leaves, breaks the protocol, or <paramref name="ct"/> is cancelled. Never throws for peer behaviour.</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        try
        {
            NbdExport? export;
            using (var handshake = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                handshake.CancelAfter(_options.HandshakeTimeout);
                export = await HandshakeAsync(handshake.Token).ConfigureAwait(false);
            }

            if (export is not null)
            {
                await TransmitAsync(export, ct).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (IsDisconnect(e))
        {
            NbdLog.Closed(_logger, _id, ct.IsCancellationRequested ? "server shutting down" : "connection lost or timed out");
        }
        catch (Exception e)
        {
            NbdLog.ConnectionFailed(_logger, _id, e);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _input.CompleteAsync().ConfigureAwait(false);
        try
        {
            await _output.CompleteAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (IsDisconnect(e))
        {
            // Unsent bytes to a client that is gone.
        }

        await _stream.DisposeAsync().ConfigureAwait(false);
        _socket.Dispose();
    }

    private static bool IsDisconnect(Exception e) =>
        e is IOException or SocketException or OperationCanceledException or ObjectDisposedException or System.Security.Authentication.AuthenticationException;
}
