using System.Buffers;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Text.Json;
using System.Threading.Channels;

namespace Ferry.Hypervisor;

/// <summary>
/// A QMP connection: reads the greeting, negotiates capabilities, runs commands matched to their
/// answers by id, and delivers asynchronous events. QMP is line-delimited JSON over a Unix socket.
/// </summary>
public sealed class QmpClient : IAsyncDisposable
{
    /// <summary>A line longer than this is a broken peer, not a QMP message.</summary>
    private const int MaxLineLength = 16 * 1024 * 1024;

    private static readonly byte[] Newline = "\n"u8.ToArray();

    private readonly Socket _socket;
    private readonly PipeReader _reader;
    private readonly Stream _stream;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly ConcurrentDictionary<long, TaskCompletionSource<JsonElement>> _pending = new();
    private readonly Channel<QmpEvent> _events = Channel.CreateBounded<QmpEvent>(
        new BoundedChannelOptions(1024) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true });
    private readonly CancellationTokenSource _closing = new();
    private readonly TimeProvider _time;
    private Task _readLoop = Task.CompletedTask;
    private long _nextId;
    private int _disposed;
    private bool _closed;

    private QmpClient(Socket socket, TimeProvider time)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: false);
        _reader = PipeReader.Create(_stream);
        _time = time;
    }

    /// <summary>Events in arrival order; completes when the connection closes.</summary>
    public ChannelReader<QmpEvent> Events => _events.Reader;

    /// <summary>Completes when QEMU closes the connection (normally because it exited).</summary>
    public Task Completion => _readLoop;

    public TimeSpan CommandTimeout { get; set; } = TimeSpan.FromSeconds(30);

    public static async Task<QmpClient> ConnectAsync(string socketPath, TimeProvider time, CancellationToken ct)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), ct).ConfigureAwait(false);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        var client = new QmpClient(socket, time);
        try
        {
            await client.HandshakeAsync(ct).ConfigureAwait(false);
            return client;
        }
        catch
        {
            await client.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async Task HandshakeAsync(CancellationToken ct)
    {
        using var greeting = await ReadMessageAsync(ct).ConfigureAwait(false)
            ?? throw new QmpException("QMP connection closed before the greeting");
        if (!greeting.RootElement.TryGetProperty("QMP", out _))
        {
            throw new QmpException("QMP peer did not send a greeting");
        }

        _readLoop = Task.Run(ReadLoopAsync, CancellationToken.None);
        await ExecuteAsync("qmp_capabilities", null, ct).ConfigureAwait(false);
    }

    /// <summary>Runs a command and returns its "return" value; QMP errors become <see cref="QmpException"/>.</summary>
    public async Task<JsonElement> ExecuteAsync(string command, object? arguments, CancellationToken ct)
    {
        var id = Interlocked.Increment(ref _nextId);
        var answer = new TaskCompletionSource<JsonElement>(TaskCreationOptions.RunContinuationsAsynchronously);
        _pending[id] = answer;
        if (Volatile.Read(ref _closed))
        {
            // The read loop has already failed every pending command; this one came too late for that.
            answer.TrySetException(new QmpException($"QMP connection closed before '{command}' could run"));
        }

        try
        {
            var message = JsonSerializer.SerializeToUtf8Bytes(new QmpCommand(command, arguments, id));
            await _writeLock.WaitAsync(ct).ConfigureAwait(false);
            try
            {
                await _stream.WriteAsync(message, ct).ConfigureAwait(false);
                await _stream.WriteAsync(Newline, ct).ConfigureAwait(false);
                await _stream.FlushAsync(ct).ConfigureAwait(false);
            }
            finally
            {
                _writeLock.Release();
            }

            using var timeout = new CancellationTokenSource(CommandTimeout, _time);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, timeout.Token);
            try
            {
                return await answer.Task.WaitAsync(linked.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (timeout.IsCancellationRequested && !ct.IsCancellationRequested)
            {
                throw new QmpException($"QMP command '{command}' timed out after {CommandTimeout.TotalSeconds:0.#} s");
            }
        }
        catch (IOException e)
        {
            throw new QmpException($"QMP connection failed while sending '{command}'", e);
        }
        catch (SocketException e)
        {
            throw new QmpException($"QMP connection failed while sending '{command}'", e);
        }
        catch (ObjectDisposedException e)
        {
            // QEMU ended (say, on this very "quit") and the client was let go while the command was in flight.
            throw new QmpException($"QMP connection closed while '{command}' was running", e);
        }
        finally
        {
            _pending.TryRemove(id, out _);
        }
    }

    private async Task ReadLoopAsync()
    {
        try
        {
            while (await ReadMessageAsync(_closing.Token).ConfigureAwait(false) is { } message)
            {
                using (message)
                {
                    Dispatch(message.RootElement);
                }
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or JsonException or QmpException)
        {
            // The connection is gone or the peer sent garbage; either way this client is finished.
        }
        finally
        {
            Volatile.Write(ref _closed, true);
            foreach (var pending in _pending.Values)
            {
                pending.TrySetException(new QmpException("QMP connection closed before QEMU answered"));
            }

            _events.Writer.TryComplete();
        }
    }

    private void Dispatch(JsonElement root)
    {
        if (root.TryGetProperty("event", out var name))
        {
            var data = root.TryGetProperty("data", out var d) ? d.Clone() : default;
            _events.Writer.TryWrite(new QmpEvent(name.GetString() ?? string.Empty, data, ReadTimestamp(root)));
            return;
        }

        if (!root.TryGetProperty("id", out var idElement) || !idElement.TryGetInt64(out var id)
            || !_pending.TryGetValue(id, out var answer))
        {
            return;
        }

        if (root.TryGetProperty("error", out var error))
        {
            var cls = error.TryGetProperty("class", out var c) ? c.GetString() : null;
            var desc = error.TryGetProperty("desc", out var s) ? s.GetString() : "unknown error";
            answer.TrySetException(new QmpException($"QEMU refused: {desc}", cls));
        }
        else
        {
            answer.TrySetResult(root.TryGetProperty("return", out var ret) ? ret.Clone() : default);
        }
    }

    private DateTimeOffset ReadTimestamp(JsonElement root) =>
        root.TryGetProperty("timestamp", out var ts)
        && ts.TryGetProperty("seconds", out var sec) && sec.TryGetInt64(out var seconds)
        && ts.TryGetProperty("microseconds", out var usec) && usec.TryGetInt64(out var micros)
            ? DateTimeOffset.FromUnixTimeSeconds(seconds).AddTicks(micros * 10)
            : _time.GetUtcNow();

    /// <summary>Reads one JSON line; null at end of stream.</summary>
    private async Task<JsonDocument?> ReadMessageAsync(CancellationToken ct)
    {
        while (true)
        {
            var result = await _reader.ReadAsync(ct).ConfigureAwait(false);
            var buffer = result.Buffer;
            var newline = buffer.PositionOf((byte)'\n');
            if (newline is { } end)
            {
                var line = buffer.Slice(0, end);
                try
                {
                    return JsonDocument.Parse(line);
                }
                finally
                {
                    _reader.AdvanceTo(buffer.GetPosition(1, end));
                }
            }

            if (buffer.Length > MaxLineLength)
            {
                throw new QmpException("QMP peer sent an over-long line");
            }

            if (result.IsCompleted)
            {
                return null;
            }

            _reader.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _closing.CancelAsync().ConfigureAwait(false);
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
            // Already closed by QEMU.
        }
        try
        {
            await _readLoop.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        await _reader.CompleteAsync().ConfigureAwait(false);
        await _stream.DisposeAsync().ConfigureAwait(false);
        _socket.Dispose();
        _closing.Dispose();

        // _writeLock is not disposed: a command still finishing on another thread may release it, and
        // a SemaphoreSlim whose wait handle was never used holds nothing that needs disposing.
    }

    private sealed record QmpCommand(
        [property: System.Text.Json.Serialization.JsonPropertyName("execute")] string Execute,
        [property: System.Text.Json.Serialization.JsonPropertyName("arguments"),
                   System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
        object? Arguments,
        [property: System.Text.Json.Serialization.JsonPropertyName("id")] long Id);
}
