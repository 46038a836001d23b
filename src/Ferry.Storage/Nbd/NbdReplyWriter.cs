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

    /// <summary>
    /// An NBD_REPLY_TYPE_BLOCK_STATUS payload: context id, then a (length, flags) pair per extent, stopping at an
    /// empty extent. Returns the bytes written, or 0 when there was no extent to describe.
    /// </summary>
    public static int WriteBlockStatus(Span<byte> span, uint contextId, ReadOnlySpan<AllocationExtent> extents)
    {
        BinaryPrimitives.WriteUInt32BigEndian(span, contextId);
        var written = 4;
        foreach (var extent in extents)
        {
            if (extent.Length <= 0)
            {
                break;
            }

            // AllocationFlags has base:allocation's bit values; a request length is 32 bits, so is every extent in range.
            BinaryPrimitives.WriteUInt32BigEndian(span[written..], (uint)Math.Min(extent.Length, uint.MaxValue));
            BinaryPrimitives.WriteUInt32BigEndian(span[(written + 4)..], (uint)extent.Flags & (NbdWire.StateHole | NbdWire.StateZero));
            written += 8;
        }

        return written == 4 ? 0 : written;
    }
}
