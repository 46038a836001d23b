using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace Ferry.Storage.Replication.Wire;

/// <summary>Writes replication link frames into a buffer writer (a PipeWriter on the hot path); allocation-free.</summary>
public static class LinkFrameWriter
{
    public static void WriteHello(IBufferWriter<byte> output, in HelloFrame hello)
    {
        var span = Begin(output, LinkFrameType.Hello, LinkFrameFlags.None, LinkWire.HelloSize);
        hello.VolumeId.TryWriteBytes(span, bigEndian: true, out _);
        var s = span[16..];
        BinaryPrimitives.WriteInt64BigEndian(s, hello.Size);
        BinaryPrimitives.WriteUInt64BigEndian(s[8..], hello.Generations.Current);
        BinaryPrimitives.WriteUInt64BigEndian(s[16..], hello.Generations.Bitmap);
        BinaryPrimitives.WriteUInt64BigEndian(s[24..], hello.Generations.History1);
        BinaryPrimitives.WriteUInt64BigEndian(s[32..], hello.Generations.History2);
        BinaryPrimitives.WriteUInt64BigEndian(s[40..], hello.Epoch);
        BinaryPrimitives.WriteUInt64BigEndian(s[48..], hello.DirtyBlocks);
        s[56] = (byte)hello.Disk;
        s[57] = (byte)hello.Role;
        s[58] = (byte)hello.Protocol;
        s[59] = hello.CrashedPrimary ? (byte)1 : (byte)0;
        var host = s.Slice(61, LinkWire.MaxHostBytes);
        host.Clear();
        Encoding.UTF8.GetEncoder().Convert(hello.Host, host, flush: true, out _, out var hostBytes, out _);
        s[60] = (byte)hostBytes;
        output.Advance(LinkWire.HeaderSize + LinkWire.HelloSize);
    }

    /// <summary>Writes a Write's header and fixed fields; the caller writes its <see cref="WriteFrame.Length"/> data bytes next.</summary>
    public static void WriteWrite(IBufferWriter<byte> output, in WriteFrame write, bool resync = false)
    {
        if (write.Length is <= 0 or > LinkWire.MaxData)
        {
            throw new ArgumentOutOfRangeException(nameof(write), "a write carries 1 byte to 32 MiB");
        }

        var flags = (write.Fua ? LinkFrameFlags.Fua : LinkFrameFlags.None) | (resync ? LinkFrameFlags.Resync : LinkFrameFlags.None);
        var span = Begin(output, LinkFrameType.Write, flags, LinkWire.WriteFixedSize + write.Length);
        BinaryPrimitives.WriteUInt64BigEndian(span, write.Sequence);
        BinaryPrimitives.WriteUInt64BigEndian(span[8..], write.Epoch);
        BinaryPrimitives.WriteInt64BigEndian(span[16..], write.Offset);
        output.Advance(LinkWire.HeaderSize + LinkWire.WriteFixedSize);
    }

    public static void WriteZero(IBufferWriter<byte> output, in ZeroFrame zero)
    {
        var flags = (zero.Fua ? LinkFrameFlags.Fua : LinkFrameFlags.None) | (zero.MayTrim ? LinkFrameFlags.MayTrim : LinkFrameFlags.None);
        var span = Begin(output, LinkFrameType.Zero, flags, LinkWire.ZeroSize);
        BinaryPrimitives.WriteUInt64BigEndian(span, zero.Sequence);
        BinaryPrimitives.WriteUInt64BigEndian(span[8..], zero.Epoch);
        BinaryPrimitives.WriteInt64BigEndian(span[16..], zero.Offset);
        BinaryPrimitives.WriteInt64BigEndian(span[24..], zero.Length);
        output.Advance(LinkWire.HeaderSize + LinkWire.ZeroSize);
    }

    /// <summary>Writes a Bitmap's header and first word; the caller writes <see cref="BitmapFrame.Length"/> bytes of words next.</summary>
    public static void WriteBitmap(IBufferWriter<byte> output, in BitmapFrame bitmap)
    {
        var span = Begin(output, LinkFrameType.Bitmap, bitmap.Last ? LinkFrameFlags.Last : LinkFrameFlags.None, LinkWire.BitmapFixedSize + bitmap.Length);
        BinaryPrimitives.WriteInt64BigEndian(span, bitmap.FirstWord);
        output.Advance(LinkWire.HeaderSize + LinkWire.BitmapFixedSize);
    }

    public static void WriteChecksumRequest(IBufferWriter<byte> output, in ChecksumRequestFrame request)
    {
        var span = Begin(output, LinkFrameType.ChecksumRequest, LinkFrameFlags.None, LinkWire.ChecksumRequestSize);
        BinaryPrimitives.WriteUInt64BigEndian(span, request.Sequence);
        BinaryPrimitives.WriteUInt64BigEndian(span[8..], request.Epoch);
        BinaryPrimitives.WriteInt64BigEndian(span[16..], request.Offset);
        BinaryPrimitives.WriteInt64BigEndian(span[24..], request.Length);
        output.Advance(LinkWire.HeaderSize + LinkWire.ChecksumRequestSize);
    }

    /// <summary>Writes the checksums answering a request, header and data.</summary>
    public static void WriteChecksums(IBufferWriter<byte> output, ulong sequence, ReadOnlySpan<ulong> checksums)
    {
        var length = checksums.Length * sizeof(ulong);
        var span = Begin(output, LinkFrameType.Checksums, LinkFrameFlags.None, LinkWire.ChecksumsFixedSize + length);
        BinaryPrimitives.WriteUInt64BigEndian(span, sequence);
        output.Advance(LinkWire.HeaderSize + LinkWire.ChecksumsFixedSize);
        var data = output.GetSpan(length);
        for (var i = 0; i < checksums.Length; i++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(data[(i * sizeof(ulong))..], checksums[i]);
        }

        output.Advance(length);
    }

    public static void WriteBitmapRequest(IBufferWriter<byte> output)
    {
        Begin(output, LinkFrameType.BitmapRequest, LinkFrameFlags.None, 0);
        output.Advance(LinkWire.HeaderSize);
    }

    /// <summary>SyncBegin (<paramref name="end"/> false) or SyncEnd.</summary>
    public static void WriteSync(IBufferWriter<byte> output, in SyncFrame sync, bool end) =>
        WriteSync(output, end ? LinkFrameType.SyncEnd : LinkFrameType.SyncBegin, sync, sync.Full && !end ? LinkFrameFlags.Full : LinkFrameFlags.None);

    /// <summary>Generation: the ids a peer in step with the primary holds from here.</summary>
    public static void WriteGeneration(IBufferWriter<byte> output, in SyncFrame ids) => WriteSync(output, LinkFrameType.Generation, ids, LinkFrameFlags.None);

    private static void WriteSync(IBufferWriter<byte> output, LinkFrameType type, in SyncFrame sync, LinkFrameFlags flags)
    {
        var span = Begin(output, type, flags, LinkWire.SyncSize);
        BinaryPrimitives.WriteUInt64BigEndian(span, sync.Sequence);
        BinaryPrimitives.WriteUInt64BigEndian(span[8..], sync.Epoch);
        BinaryPrimitives.WriteUInt64BigEndian(span[16..], sync.Ids.Current);
        BinaryPrimitives.WriteUInt64BigEndian(span[24..], sync.Ids.Bitmap);
        BinaryPrimitives.WriteUInt64BigEndian(span[32..], sync.Ids.History1);
        BinaryPrimitives.WriteUInt64BigEndian(span[40..], sync.Ids.History2);
        output.Advance(LinkWire.HeaderSize + LinkWire.SyncSize);
    }

    public static void WriteFlush(IBufferWriter<byte> output, in FlushFrame flush)
    {
        var span = Begin(output, LinkFrameType.Flush, LinkFrameFlags.None, LinkWire.FlushSize);
        BinaryPrimitives.WriteUInt64BigEndian(span, flush.Sequence);
        BinaryPrimitives.WriteUInt64BigEndian(span[8..], flush.Epoch);
        output.Advance(LinkWire.HeaderSize + LinkWire.FlushSize);
    }

    public static void WriteAck(IBufferWriter<byte> output, in AckFrame ack)
    {
        var span = Begin(output, LinkFrameType.Ack, LinkFrameFlags.None, LinkWire.AckSize);
        BinaryPrimitives.WriteUInt64BigEndian(span, ack.Sequence);
        span[8] = (byte)ack.Kind;
        span[9] = (byte)ack.Status;
        output.Advance(LinkWire.HeaderSize + LinkWire.AckSize);
    }

    public static void WritePing(IBufferWriter<byte> output, ulong nonce, bool pong)
    {
        var span = Begin(output, pong ? LinkFrameType.Pong : LinkFrameType.Ping, LinkFrameFlags.None, LinkWire.PingSize);
        BinaryPrimitives.WriteUInt64BigEndian(span, nonce);
        output.Advance(LinkWire.HeaderSize + LinkWire.PingSize);
    }

    /// <summary>An error the sender closes after; the message is cut to the limit (a rare path, so plain string work is fine).</summary>
    public static void WriteError(IBufferWriter<byte> output, uint code, string message)
    {
        while (Encoding.UTF8.GetByteCount(message) > LinkWire.MaxErrorMessage)
        {
            message = message[..^1];
        }

        var length = Encoding.UTF8.GetByteCount(message);
        var span = Begin(output, LinkFrameType.Error, LinkFrameFlags.None, 4 + length);
        BinaryPrimitives.WriteUInt32BigEndian(span, code);
        Encoding.UTF8.GetBytes(message, span[4..]);
        output.Advance(LinkWire.HeaderSize + 4 + length);
    }

    /// <summary>Writes the header and returns the span for the body (header already in place before it).</summary>
    private static Span<byte> Begin(IBufferWriter<byte> output, LinkFrameType type, LinkFrameFlags flags, int bodyLength)
    {
        var fixedBody = type switch
        {
            LinkFrameType.Write => LinkWire.WriteFixedSize,
            LinkFrameType.Bitmap => LinkWire.BitmapFixedSize,
            LinkFrameType.Checksums => LinkWire.ChecksumsFixedSize,
            _ => bodyLength,
        };
        var span = output.GetSpan(LinkWire.HeaderSize + fixedBody);
        BinaryPrimitives.WriteUInt32BigEndian(span, LinkWire.Magic);
        BinaryPrimitives.WriteUInt16BigEndian(span[4..], (ushort)type);
        BinaryPrimitives.WriteUInt16BigEndian(span[6..], (ushort)flags);
        BinaryPrimitives.WriteInt32BigEndian(span[8..], bodyLength);
        return span.Slice(LinkWire.HeaderSize, fixedBody);
    }
}
