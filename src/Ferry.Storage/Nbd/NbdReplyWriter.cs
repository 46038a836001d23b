using System.Buffers.Binary;

namespace Ferry.Storage.Nbd;

/// <summary>Writes the fixed-size headers the server sends, in place, into spans of exactly the header's size or more.</summary>
internal static class NbdReplyWriter
{
    /// <summary>proto.md "Fixed newstyle negotiation": magic, option, reply type, length of the data that follows.</summary>
    public static void WriteOptionReplyHeader(Span<byte> span, NbdOption option, NbdOptionReply reply, uint length)
    {
        BinaryPrimitives.WriteUInt64BigEndian(span, NbdWire.OptionReplyMagic);
        BinaryPrimitives.WriteUInt32BigEndian(span[8..], (uint)option);
        BinaryPrimitives.WriteUInt32BigEndian(span[12..], (uint)reply);
        BinaryPrimitives.WriteUInt32BigEndian(span[16..], length);
    }

    /// <summary>proto.md "Simple reply message"; a successful read's data follows.</summary>
    public static void WriteSimpleReply(Span<byte> span, NbdErrno error, ulong cookie)
    {
        BinaryPrimitives.WriteUInt32BigEndian(span, NbdWire.SimpleReplyMagic);
        BinaryPrimitives.WriteUInt32BigEndian(span[4..], (uint)error);
        BinaryPrimitives.WriteUInt64BigEndian(span[8..], cookie);
    }

    /// <summary>proto.md "Structured reply chunk message": magic, flags, type, cookie, payload length.</summary>
    public static void WriteStructuredHeader(Span<byte> span, ushort flags, ushort type, ulong cookie, uint length)
    {
        BinaryPrimitives.WriteUInt32BigEndian(span, NbdWire.StructuredReplyMagic);
        BinaryPrimitives.WriteUInt16BigEndian(span[4..], flags);
        BinaryPrimitives.WriteUInt16BigEndian(span[6..], type);
        BinaryPrimitives.WriteUInt64BigEndian(span[8..], cookie);
        BinaryPrimitives.WriteUInt32BigEndian(span[16..], length);
    }
}
