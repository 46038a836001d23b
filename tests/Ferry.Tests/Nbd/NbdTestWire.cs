using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using Ferry.Storage.Nbd;

namespace Ferry.Tests.Nbd;

/// <summary>The client side of the wire, for tests: encoders for what clients send, and byte sequences split into segments.</summary>
internal static class NbdTestWire
{
    public static byte[] Encode(NbdRequest request)
    {
        var bytes = new byte[NbdWire.RequestHeaderSize];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, NbdWire.RequestMagic);
        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(4), (ushort)request.Flags);
        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(6), (ushort)request.Command);
        BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan(8), request.Cookie);
        BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan(16), request.Offset);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(24), request.Length);
        return bytes;
    }

    public static byte[] EncodeOption(NbdOption option, ReadOnlySpan<byte> data) => EncodeOption((uint)option, data);

    public static byte[] EncodeOption(uint option, ReadOnlySpan<byte> data)
    {
        var bytes = new byte[NbdWire.OptionHeaderSize + data.Length];
        BinaryPrimitives.WriteUInt64BigEndian(bytes, NbdWire.OptionMagic);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(8), option);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(12), (uint)data.Length);
        data.CopyTo(bytes.AsSpan(16));
        return bytes;
    }

    /// <summary>NBD_OPT_GO / NBD_OPT_INFO data.</summary>
    public static byte[] EncodeExportQuery(string name, params NbdInfoType[] infos)
    {
        var stream = new MemoryStream();
        WriteString(stream, name);
        WriteUInt16(stream, (ushort)infos.Length);
        foreach (var info in infos)
        {
            WriteUInt16(stream, (ushort)info);
        }

        return stream.ToArray();
    }

    public static byte[] EncodeExportQuery(NbdExportQuery query)
    {
        var infos = new List<NbdInfoType>();
        if (query.WantsName)
        {
            infos.Add(NbdInfoType.Name);
        }

        if (query.WantsDescription)
        {
            infos.Add(NbdInfoType.Description);
        }

        if (query.WantsBlockSize)
        {
            infos.Add(NbdInfoType.BlockSize);
        }

        return EncodeExportQuery(query.ExportName, [.. infos]);
    }

    /// <summary>NBD_OPT_{LIST,SET}_META_CONTEXT data.</summary>
    public static byte[] EncodeMetaContextQuery(string name, params string[] queries)
    {
        var stream = new MemoryStream();
        WriteString(stream, name);
        WriteUInt32(stream, (uint)queries.Length);
        foreach (var query in queries)
        {
            WriteString(stream, query);
        }

        return stream.ToArray();
    }

    /// <summary>The bytes as a sequence whose segments end at each of the given cut points.</summary>
    public static ReadOnlySequence<byte> Split(byte[] bytes, params int[] cuts)
    {
        var points = cuts.Where(c => c > 0 && c < bytes.Length).Distinct().Order().Append(bytes.Length).ToArray();
        Segment? first = null, last = null;
        var start = 0;
        foreach (var end in points)
        {
            var segment = new Segment(bytes.AsMemory(start, end - start));
            if (last is null)
            {
                first = segment;
            }
            else
            {
                last.Append(segment);
            }

            last = segment;
            start = end;
        }

        return first is null ? ReadOnlySequence<byte>.Empty : new ReadOnlySequence<byte>(first, 0, last!, last!.Memory.Length);
    }

    private static void WriteString(Stream stream, string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        WriteUInt32(stream, (uint)bytes.Length);
        stream.Write(bytes);
    }

    private static void WriteUInt32(Stream stream, uint value)
    {
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, value);
        stream.Write(bytes);
    }

    private static void WriteUInt16(Stream stream, ushort value)
    {
        Span<byte> bytes = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16BigEndian(bytes, value);
        stream.Write(bytes);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory) => Memory = memory;

        public void Append(Segment next)
        {
            next.RunningIndex = RunningIndex + Memory.Length;
            Next = next;
        }
    }
}
