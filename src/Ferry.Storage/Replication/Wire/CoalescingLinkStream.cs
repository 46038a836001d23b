using System.Net.Sockets;

namespace Ferry.Storage.Replication.Wire;

/// <summary>
/// The stream under a link's TLS: it gathers the encrypted records TLS writes one at a time (at most
/// 16 KiB each) and sends them together when the link flushes or the buffer is full, one system call
/// for many records instead of one each. Reads pass straight through; one write at a time, as TLS makes
/// them. Until <see cref="Coalesce"/> is set (after the handshake, whose messages must go out as written)
/// writes pass through too.
/// </summary>
public sealed class CoalescingLinkStream(Stream inner, Socket socket) : LinkStream, ISocketLink
{
    private const int Capacity = 256 << 10;

    private byte[]? _buffer;
    private int _buffered;

    /// <summary>Gather writes from now on.</summary>
    public bool Coalesce { get; set; }

    public Socket? Socket => socket;

    public override int Read(Span<byte> buffer) => inner.Read(buffer);

    public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        inner.ReadAsync(buffer, cancellationToken);

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        inner.ReadAsync(buffer, offset, count, cancellationToken);

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (!Coalesce)
        {
            await inner.WriteAsync(buffer, cancellationToken).ConfigureAwait(false);
            return;
        }

        _buffer ??= new byte[Capacity];
        if (_buffered + buffer.Length > Capacity)
        {
            await SendBufferedAsync(cancellationToken).ConfigureAwait(false);
        }

        if (buffer.Length >= Capacity)
        {
            await inner.WriteAsync(buffer, cancellationToken).ConfigureAwait(false);
            return;
        }

        buffer.Span.CopyTo(_buffer.AsSpan(_buffered));
        _buffered += buffer.Length;
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        Flush();
        inner.Write(buffer);
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override async Task FlushAsync(CancellationToken cancellationToken)
    {
        await SendBufferedAsync(cancellationToken).ConfigureAwait(false);
        await inner.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    public override void Flush()
    {
        if (_buffered > 0)
        {
            inner.Write(_buffer.AsSpan(0, _buffered));
            _buffered = 0;
        }
    }

    private async ValueTask SendBufferedAsync(CancellationToken ct)
    {
        if (_buffered > 0)
        {
            var count = _buffered;
            _buffered = 0;
            await inner.WriteAsync(_buffer.AsMemory(0, count), ct).ConfigureAwait(false);
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
        }

        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        await inner.DisposeAsync().ConfigureAwait(false);
        await base.DisposeAsync().ConfigureAwait(false);
    }
}
