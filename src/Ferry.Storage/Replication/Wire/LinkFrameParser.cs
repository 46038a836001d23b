using System.Buffers;
using System.Text;
using Ferry.Storage.Volumes;

namespace Ferry.Storage.Replication.Wire;

/// <summary>
/// Parses replication link frames. Pure over a <see cref="SequenceReader{T}"/>: NeedMoreData leaves the
/// reader where it was, InvalidData names the error, and no input throws.
/// </summary>
public static class LinkFrameParser
{
    public static OperationStatus TryParse(ref SequenceReader<byte> reader, out LinkFrame frame, out LinkWireError error)
    {
        frame = default;
        error = LinkWireError.None;
        if (reader.Remaining < LinkWire.HeaderSize)
        {
            return OperationStatus.NeedMoreData;
        }

        var start = reader;
        reader.TryReadBigEndian(out int magic);
        reader.TryReadBigEndian(out short type);
        reader.TryReadBigEndian(out short flags);
        reader.TryReadBigEndian(out int length);
        var header = new LinkFrameHeader((LinkFrameType)(ushort)type, (LinkFrameFlags)(ushort)flags, length);
        error = CheckHeader((uint)magic, header);
        if (error != LinkWireError.None)
        {
            reader = start;
            return OperationStatus.InvalidData;
        }

        // Everything but the data of a Write or Bitmap must be here before the body is read.
        var fixedLength = header.Type switch
        {
            LinkFrameType.Write => LinkWire.WriteFixedSize,
            LinkFrameType.Bitmap => LinkWire.BitmapFixedSize,
            LinkFrameType.Checksums => LinkWire.ChecksumsFixedSize,
            _ => length,
        };
        if (reader.Remaining < fixedLength)
        {
            reader = start;
            return OperationStatus.NeedMoreData;
        }

        frame = ReadBody(ref reader, header, out error);
        if (error != LinkWireError.None)
        {
            reader = start;
            frame = default;
            return OperationStatus.InvalidData;
        }

        return OperationStatus.Done;
    }

    private static LinkWireError CheckHeader(uint magic, LinkFrameHeader header)
    {
        if (magic != LinkWire.Magic)
        {
            return LinkWireError.BadMagic;
        }

        var (min, max, allowedFlags) = header.Type switch
        {
            LinkFrameType.Hello => (LinkWire.HelloSize, LinkWire.HelloSize, LinkFrameFlags.None),
            LinkFrameType.Write => (LinkWire.WriteFixedSize + 1, LinkWire.MaxBody, LinkFrameFlags.Fua | LinkFrameFlags.Resync),
            LinkFrameType.Bitmap => (LinkWire.BitmapFixedSize, LinkWire.BitmapFixedSize + LinkWire.MaxData, LinkFrameFlags.Last),
            LinkFrameType.BitmapRequest => (0, 0, LinkFrameFlags.None),
            LinkFrameType.SyncBegin => (LinkWire.SyncSize, LinkWire.SyncSize, LinkFrameFlags.Full),
            LinkFrameType.SyncEnd or LinkFrameType.Generation => (LinkWire.SyncSize, LinkWire.SyncSize, LinkFrameFlags.None),
            LinkFrameType.Zero => (LinkWire.ZeroSize, LinkWire.ZeroSize, LinkFrameFlags.Fua | LinkFrameFlags.MayTrim),
            LinkFrameType.Flush => (LinkWire.FlushSize, LinkWire.FlushSize, LinkFrameFlags.None),
            LinkFrameType.ChecksumRequest => (LinkWire.ChecksumRequestSize, LinkWire.ChecksumRequestSize, LinkFrameFlags.None),
            LinkFrameType.Checksums => (LinkWire.ChecksumsFixedSize + sizeof(ulong), LinkWire.ChecksumsFixedSize + LinkWire.MaxChecksumsData, LinkFrameFlags.None),
            LinkFrameType.Ack => (LinkWire.AckSize, LinkWire.AckSize, LinkFrameFlags.None),
            LinkFrameType.Error => (4, 4 + LinkWire.MaxErrorMessage, LinkFrameFlags.None),
            LinkFrameType.Ping or LinkFrameType.Pong => (LinkWire.PingSize, LinkWire.PingSize, LinkFrameFlags.None),
            _ => (-1, -1, LinkFrameFlags.None),
        };
        if (min < 0)
        {
            return LinkWireError.UnknownType;
        }

        if (header.BodyLength > max && header.Type is LinkFrameType.Write or LinkFrameType.Bitmap or LinkFrameType.Checksums)
        {
            return LinkWireError.TooLarge;
        }

        return header.BodyLength < min || header.BodyLength > max ? LinkWireError.BadLength
            : (header.Flags & ~allowedFlags) != 0 ? LinkWireError.BadValue
            : header.Type == LinkFrameType.Bitmap && (header.BodyLength - LinkWire.BitmapFixedSize) % sizeof(ulong) != 0 ? LinkWireError.BadLength
            : header.Type == LinkFrameType.Checksums && (header.BodyLength - LinkWire.ChecksumsFixedSize) % sizeof(ulong) != 0 ? LinkWireError.BadLength
            : LinkWireError.None;
    }

    private static LinkFrame ReadBody(ref SequenceReader<byte> reader, LinkFrameHeader header, out LinkWireError error)
    {
        error = LinkWireError.None;
        var fua = (header.Flags & LinkFrameFlags.Fua) != 0;
        switch (header.Type)
        {
            case LinkFrameType.Hello:
                return ReadHello(ref reader, header, out error);

            case LinkFrameType.Write:
                var write = new WriteFrame(U64(ref reader), U64(ref reader), I64(ref reader), header.BodyLength - LinkWire.WriteFixedSize, fua);
                error = write.Offset < 0 ? LinkWireError.BadValue : LinkWireError.None;
                return new LinkFrame { Header = header, Write = write };

            case LinkFrameType.Zero:
                var zero = new ZeroFrame(U64(ref reader), U64(ref reader), I64(ref reader), I64(ref reader), fua, (header.Flags & LinkFrameFlags.MayTrim) != 0);
                error = zero.Offset < 0 || zero.Length <= 0 ? LinkWireError.BadValue : LinkWireError.None;
                return new LinkFrame { Header = header, Zero = zero };

            case LinkFrameType.Bitmap:
                var bitmap = new BitmapFrame(I64(ref reader), header.BodyLength - LinkWire.BitmapFixedSize, (header.Flags & LinkFrameFlags.Last) != 0);
                error = bitmap.FirstWord < 0 ? LinkWireError.BadValue : LinkWireError.None;
                return new LinkFrame { Header = header, Bitmap = bitmap };

            case LinkFrameType.BitmapRequest:
                return new LinkFrame { Header = header };

            case LinkFrameType.ChecksumRequest:
                var request = new ChecksumRequestFrame(U64(ref reader), U64(ref reader), I64(ref reader), I64(ref reader));
                error = request.Offset < 0 || request.Offset % LinkWire.ChecksumBlock != 0 || request.Length is <= 0 or > LinkWire.MaxChecksumRange
                    ? LinkWireError.BadValue
                    : LinkWireError.None;
                return new LinkFrame { Header = header, ChecksumRequest = request };

            case LinkFrameType.Checksums:
                return new LinkFrame { Header = header, Checksums = new ChecksumsFrame(U64(ref reader), header.BodyLength - LinkWire.ChecksumsFixedSize) };

            case LinkFrameType.SyncBegin or LinkFrameType.SyncEnd or LinkFrameType.Generation:
                var sync = new SyncFrame(
                    U64(ref reader), U64(ref reader), new GenerationIds(U64(ref reader), U64(ref reader), U64(ref reader), U64(ref reader)), (header.Flags & LinkFrameFlags.Full) != 0);
                return new LinkFrame { Header = header, Sync = sync };

            case LinkFrameType.Flush:
                return new LinkFrame { Header = header, Flush = new FlushFrame(U64(ref reader), U64(ref reader)) };

            case LinkFrameType.Ack:
                var sequence = U64(ref reader);
                reader.TryRead(out var kind);
                reader.TryRead(out var status);
                error = kind is (byte)AckKind.Received or (byte)AckKind.Written && status <= (byte)AckStatus.Invalid ? LinkWireError.None : LinkWireError.BadValue;
                return new LinkFrame { Header = header, Ack = new AckFrame(sequence, (AckKind)kind, (AckStatus)status) };

            case LinkFrameType.Error:
                reader.TryReadBigEndian(out int code);
                var messageLength = header.BodyLength - 4;
                var message = reader.UnreadSpan.Length >= messageLength
                    ? Encoding.UTF8.GetString(reader.UnreadSpan[..messageLength])
                    : Encoding.UTF8.GetString(reader.UnreadSequence.Slice(0, messageLength));
                reader.Advance(messageLength);
                return new LinkFrame { Header = header, ErrorCode = (uint)code, ErrorMessage = message };

            default: // Ping, Pong
                return new LinkFrame { Header = header, Nonce = U64(ref reader) };
        }
    }

    private static LinkFrame ReadHello(ref SequenceReader<byte> reader, LinkFrameHeader header, out LinkWireError error)
    {
        Span<byte> id = stackalloc byte[16];
        reader.TryCopyTo(id);
        reader.Advance(16);
        var size = I64(ref reader);
        var generations = new GenerationIds(U64(ref reader), U64(ref reader), U64(ref reader), U64(ref reader));
        var epoch = U64(ref reader);
        var dirty = U64(ref reader);
        reader.TryRead(out var disk);
        reader.TryRead(out var role);
        reader.TryRead(out var protocol);
        reader.TryRead(out var crashed);
        reader.TryRead(out var hostLength);
        Span<byte> hostBytes = stackalloc byte[LinkWire.MaxHostBytes];
        reader.TryCopyTo(hostBytes);
        reader.Advance(LinkWire.MaxHostBytes);
        var valid = size > 0 && disk <= (byte)DiskState.UpToDate && role <= (byte)CopyRole.Primary
            && protocol is (byte)'A' or (byte)'B' or (byte)'C' && crashed <= 1 && hostLength is > 0 and <= LinkWire.MaxHostBytes;
        error = valid ? LinkWireError.None : LinkWireError.BadValue;
        var host = valid ? Encoding.UTF8.GetString(hostBytes[..hostLength]) : "";
        var hello = new HelloFrame(new Guid(id, bigEndian: true), size, generations, epoch, dirty, (DiskState)disk, (CopyRole)role, (ReplicationProtocol)protocol, crashed == 1, host);
        return new LinkFrame { Header = header, Hello = hello };
    }

    private static ulong U64(ref SequenceReader<byte> reader)
    {
        reader.TryReadBigEndian(out long value);
        return (ulong)value;
    }

    private static long I64(ref SequenceReader<byte> reader)
    {
        reader.TryReadBigEndian(out long value);
        return value;
    }
}
