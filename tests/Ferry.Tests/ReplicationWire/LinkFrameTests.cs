using System.Buffers;
using System.Buffers.Binary;
using CsCheck;
using Ferry.Storage.Replication.Wire;
using Ferry.Storage.Volumes;

namespace Ferry.Tests.ReplicationWire;

public class LinkFrameTests
{
    private static readonly Gen<HelloFrame> Hello =
        Gen.Select(Gen.Guid, Gen.Long[1, long.MaxValue], Gen.ULong, Gen.ULong, Gen.ULong, Gen.ULong, Gen.ULong, Gen.ULong)
            .Select(Gen.Enum<DiskState>(), Gen.Enum<CopyRole>(), Gen.OneOf(Gen.Const(ReplicationProtocol.A), Gen.Const(ReplicationProtocol.B), Gen.Const(ReplicationProtocol.C)), Gen.Bool,
                Gen.String[Gen.Char['a', 'z'], 1, 63],
                (t, disk, role, protocol, crashed, host) => new HelloFrame(t.Item1, t.Item2, new GenerationIds(t.Item3, t.Item4, t.Item5, t.Item6), t.Item7, t.Item8, disk, role, protocol, crashed, host));

    private static readonly Gen<LinkFrame> AnyFrame = Gen.OneOf(
        Hello.Select(h => new LinkFrame { Header = new(LinkFrameType.Hello, LinkFrameFlags.None, LinkWire.HelloSize), Hello = h }),
        Gen.Select(Gen.ULong, Gen.ULong, Gen.Long[0, long.MaxValue], Gen.Int[1, 5000], Gen.Bool).Select((s, e, o, l, f) =>
            new LinkFrame { Header = new(LinkFrameType.Write, f ? LinkFrameFlags.Fua : LinkFrameFlags.None, LinkWire.WriteFixedSize + l), Write = new WriteFrame(s, e, o, l, f) }),
        Gen.Select(Gen.ULong, Gen.ULong, Gen.Long[0, long.MaxValue], Gen.Long[1, long.MaxValue], Gen.Bool, Gen.Bool).Select((s, e, o, l, f, t) =>
            new LinkFrame
            {
                Header = new(LinkFrameType.Zero, (f ? LinkFrameFlags.Fua : 0) | (t ? LinkFrameFlags.MayTrim : 0), LinkWire.ZeroSize),
                Zero = new ZeroFrame(s, e, o, l, f, t),
            }),
        Gen.Select(Gen.ULong, Gen.ULong).Select((s, e) => new LinkFrame { Header = new(LinkFrameType.Flush, LinkFrameFlags.None, LinkWire.FlushSize), Flush = new FlushFrame(s, e) }),
        Gen.Select(Gen.ULong, Gen.Enum<AckKind>(), Gen.Enum<AckStatus>()).Select((s, k, st) =>
            new LinkFrame { Header = new(LinkFrameType.Ack, LinkFrameFlags.None, LinkWire.AckSize), Ack = new AckFrame(s, k, st) }),
        Gen.Select(Gen.ULong, Gen.Bool).Select((n, pong) =>
            new LinkFrame { Header = new(pong ? LinkFrameType.Pong : LinkFrameType.Ping, LinkFrameFlags.None, LinkWire.PingSize), Nonce = n }),
        Gen.Select(Gen.UInt, Gen.String[Gen.Char.AlphaNumeric, 0, 200]).Select((c, m) =>
            new LinkFrame { Header = new(LinkFrameType.Error, LinkFrameFlags.None, 4 + m.Length), ErrorCode = c, ErrorMessage = m }),
        Gen.Select(Gen.Long[0, long.MaxValue], Gen.Int[0, 600], Gen.Bool).Select((w, n, last) =>
            new LinkFrame { Header = new(LinkFrameType.Bitmap, last ? LinkFrameFlags.Last : 0, LinkWire.BitmapFixedSize + (n * 8)), Bitmap = new BitmapFrame(w, n * 8, last) }),
        Gen.Const(new LinkFrame { Header = new(LinkFrameType.BitmapRequest, LinkFrameFlags.None, 0) }),
        Gen.Select(Gen.ULong, Gen.ULong, Gen.Long[0, long.MaxValue / LinkWire.ChecksumBlock], Gen.Long[1, LinkWire.MaxChecksumRange]).Select((s, e, block, l) =>
            new LinkFrame
            {
                Header = new(LinkFrameType.ChecksumRequest, LinkFrameFlags.None, LinkWire.ChecksumRequestSize),
                ChecksumRequest = new ChecksumRequestFrame(s, e, block * LinkWire.ChecksumBlock, l),
            }),
        Gen.Select(Gen.ULong, Gen.Int[1, LinkWire.MaxChecksumRange / LinkWire.ChecksumBlock]).Select((s, n) =>
            new LinkFrame { Header = new(LinkFrameType.Checksums, LinkFrameFlags.None, LinkWire.ChecksumsFixedSize + (n * 8)), Checksums = new ChecksumsFrame(s, n * 8) }),
        Gen.Select(Gen.ULong, Gen.ULong, Gen.ULong, Gen.ULong, Gen.ULong, Gen.ULong, Gen.Bool, Gen.OneOf(LinkFrameType.SyncBegin, LinkFrameType.SyncEnd, LinkFrameType.Generation)).Select(t =>
        {
            var type = t.Item8;
            var sync = new SyncFrame(t.Item1, t.Item2, new GenerationIds(t.Item3, t.Item4, t.Item5, t.Item6), t.Item7 && type == LinkFrameType.SyncBegin);
            return new LinkFrame
            {
                Header = new(type, sync.Full ? LinkFrameFlags.Full : 0, LinkWire.SyncSize),
                Sync = sync,
            };
        }));

    private static int FixedLength(LinkFrame frame) => LinkWire.HeaderSize + frame.Header.Type switch
    {
        LinkFrameType.Write => LinkWire.WriteFixedSize,
        LinkFrameType.Bitmap => LinkWire.BitmapFixedSize,
        LinkFrameType.Checksums => LinkWire.ChecksumsFixedSize,
        _ => frame.Header.BodyLength,
    };

    private static byte[] Encode(LinkFrame frame)
    {
        var buffer = new ArrayBufferWriter<byte>();
        switch (frame.Header.Type)
        {
            case LinkFrameType.Hello: LinkFrameWriter.WriteHello(buffer, frame.Hello); break;
            case LinkFrameType.Write: LinkFrameWriter.WriteWrite(buffer, frame.Write); break;
            case LinkFrameType.Zero: LinkFrameWriter.WriteZero(buffer, frame.Zero); break;
            case LinkFrameType.Flush: LinkFrameWriter.WriteFlush(buffer, frame.Flush); break;
            case LinkFrameType.Ack: LinkFrameWriter.WriteAck(buffer, frame.Ack); break;
            case LinkFrameType.Error: LinkFrameWriter.WriteError(buffer, frame.ErrorCode, frame.ErrorMessage!); break;
            case LinkFrameType.Bitmap: LinkFrameWriter.WriteBitmap(buffer, frame.Bitmap); break;
            case LinkFrameType.BitmapRequest: LinkFrameWriter.WriteBitmapRequest(buffer); break;
            case LinkFrameType.ChecksumRequest: LinkFrameWriter.WriteChecksumRequest(buffer, frame.ChecksumRequest); break;
            case LinkFrameType.Checksums: LinkFrameWriter.WriteChecksums(buffer, frame.Checksums.Sequence, new ulong[frame.Checksums.Length / 8]); break;
            case LinkFrameType.SyncBegin or LinkFrameType.SyncEnd: LinkFrameWriter.WriteSync(buffer, frame.Sync, frame.Header.Type == LinkFrameType.SyncEnd); break;
            case LinkFrameType.Generation: LinkFrameWriter.WriteGeneration(buffer, frame.Sync); break;
            default: LinkFrameWriter.WritePing(buffer, frame.Nonce, frame.Header.Type == LinkFrameType.Pong); break;
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Splits bytes into a multi-segment sequence at the given points.</summary>
    private static ReadOnlySequence<byte> Split(byte[] bytes, params int[] cuts)
    {
        var points = cuts.Where(c => c > 0 && c < bytes.Length).Distinct().Order().ToArray();
        if (points.Length == 0)
        {
            return new ReadOnlySequence<byte>(bytes);
        }

        var first = new Segment(bytes.AsMemory(0, points[0]), 0);
        var last = first;
        for (var i = 0; i < points.Length; i++)
        {
            var end = i + 1 < points.Length ? points[i + 1] : bytes.Length;
            last = last.Append(bytes.AsMemory(points[i], end - points[i]));
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private static OperationStatus Parse(ReadOnlySequence<byte> bytes, out LinkFrame frame, out LinkWireError error, out long consumed)
    {
        var reader = new SequenceReader<byte>(bytes);
        var status = LinkFrameParser.TryParse(ref reader, out frame, out error);
        consumed = reader.Consumed;
        return status;
    }

    [Fact]
    public void Every_frame_round_trips_at_any_segmentation() =>
        Gen.Select(AnyFrame, Gen.Int[0, 120], Gen.Int[0, 120]).Sample((frame, cut1, cut2) =>
        {
            var bytes = Encode(frame);
            var status = Parse(Split(bytes, cut1, cut2), out var parsed, out _, out var consumed);
            var fixedLength = FixedLength(frame);
            return status == OperationStatus.Done && parsed == frame && consumed == fixedLength;
        });

    [Fact]
    public void A_truncated_frame_needs_more_data_and_consumes_nothing() =>
        Gen.Select(AnyFrame, Gen.Int[0, 200]).Sample((frame, keep) =>
        {
            var bytes = Encode(frame);
            var fixedLength = FixedLength(frame);
            var cut = Math.Min(keep, fixedLength - 1);
            return Parse(new ReadOnlySequence<byte>(bytes, 0, cut), out _, out _, out var consumed) == OperationStatus.NeedMoreData && consumed == 0;
        });

    [Fact]
    public void Random_bytes_never_throw_and_invalid_data_consumes_nothing() =>
        Gen.Byte.Array[0, 200].Sample(bytes =>
        {
            var status = Parse(new ReadOnlySequence<byte>(bytes), out _, out _, out var consumed);
            return status != OperationStatus.InvalidData || consumed == 0;
        });

    [Fact]
    public void Garbage_after_a_valid_magic_never_throws() =>
        Gen.Byte.Array[8, 120].Sample(tail =>
        {
            var bytes = new byte[4 + tail.Length];
            BinaryPrimitives.WriteUInt32BigEndian(bytes, LinkWire.Magic);
            tail.CopyTo(bytes, 4);
            _ = Parse(new ReadOnlySequence<byte>(bytes), out _, out _, out _);
        });

    [Theory]
    [InlineData(0xDEADBEEF, 4, 0, 16, LinkWireError.BadMagic)]
    [InlineData(LinkWire.Magic, 99, 0, 8, LinkWireError.UnknownType)]
    [InlineData(LinkWire.Magic, 2, 0, LinkWire.MaxBody + 1, LinkWireError.TooLarge)]
    [InlineData(LinkWire.Magic, 2, 0, LinkWire.WriteFixedSize, LinkWireError.BadLength)]
    [InlineData(LinkWire.Magic, 4, 0, 15, LinkWireError.BadLength)]
    [InlineData(LinkWire.Magic, 4, 1, 16, LinkWireError.BadValue)]
    [InlineData(LinkWire.Magic, 6, 0, 4 + LinkWire.MaxErrorMessage + 1, LinkWireError.BadLength)]
    [InlineData(LinkWire.Magic, 14, 0, LinkWire.ChecksumsFixedSize + LinkWire.MaxChecksumsData + 8, LinkWireError.TooLarge)]
    [InlineData(LinkWire.Magic, 14, 0, LinkWire.ChecksumsFixedSize + 12, LinkWireError.BadLength)]
    public void Bad_headers_are_refused_before_any_body_is_read(uint magic, int type, int flags, int length, LinkWireError expected)
    {
        var bytes = new byte[LinkWire.HeaderSize];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, magic);
        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(4), (ushort)type);
        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(6), (ushort)flags);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(8), length);
        Assert.Equal(OperationStatus.InvalidData, Parse(new ReadOnlySequence<byte>(bytes), out _, out var error, out _));
        Assert.Equal(expected, error);
    }

    [Fact]
    public void Bad_field_values_are_refused()
    {
        var ack = Encode(new LinkFrame { Header = new(LinkFrameType.Ack, 0, LinkWire.AckSize), Ack = new AckFrame(1, AckKind.Written, AckStatus.Ok) });
        ack[^2] = 9; // no such ack kind
        Assert.Equal(OperationStatus.InvalidData, Parse(new ReadOnlySequence<byte>(ack), out _, out var error, out _));
        Assert.Equal(LinkWireError.BadValue, error);

        var write = Encode(new LinkFrame { Header = new(LinkFrameType.Write, 0, LinkWire.WriteFixedSize + 1), Write = new WriteFrame(1, 1, 0, 1, false) });
        write[LinkWire.HeaderSize + 16] = 0x80; // negative offset
        Assert.Equal(OperationStatus.InvalidData, Parse(new ReadOnlySequence<byte>(write), out _, out error, out _));
        Assert.Equal(LinkWireError.BadValue, error);

        // Checksum ranges start on a 4 KiB block and cover at most the limit.
        foreach (var (offset, length) in new[] { (100L, 4096L), (0L, 0L), (0L, LinkWire.MaxChecksumRange + 1L) })
        {
            var request = Encode(new LinkFrame
            {
                Header = new(LinkFrameType.ChecksumRequest, 0, LinkWire.ChecksumRequestSize),
                ChecksumRequest = new ChecksumRequestFrame(1, 1, offset, length),
            });
            Assert.Equal(OperationStatus.InvalidData, Parse(new ReadOnlySequence<byte>(request), out _, out error, out _));
            Assert.Equal(LinkWireError.BadValue, error);
        }
    }

    [Fact]
    public void Long_error_messages_are_cut_to_the_limit()
    {
        var bytes = Encode(new LinkFrame { Header = new(LinkFrameType.Error, 0, 0), ErrorCode = 7, ErrorMessage = new string('é', 2000) });
        Assert.Equal(OperationStatus.Done, Parse(new ReadOnlySequence<byte>(bytes), out var frame, out _, out _));
        Assert.Equal(512, frame.ErrorMessage!.Length);
        Assert.Equal(7u, frame.ErrorCode);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
