using System.Buffers;
using System.Text;

namespace Ferry.Storage.Nbd;

/// <summary>
/// Parses option haggling frames. Pure; peer bytes never make it throw. The data parsers take a reader over
/// exactly one option's data (its length is known from the header), so short or long data is invalid, not incomplete.
/// </summary>
internal static class NbdOptionParser
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Parses an option header (proto.md "Newstyle negotiation"); a wrong magic is fatal.</summary>
    public static OperationStatus TryParseHeader(ref SequenceReader<byte> reader, out NbdOptionHeader header, out NbdParseError error)
    {
        header = default;
        error = NbdParseError.None;
        if (reader.Remaining < NbdWire.OptionHeaderSize)
        {
            return OperationStatus.NeedMoreData;
        }

        reader.TryReadBigEndian(out long magic);
        if ((ulong)magic != NbdWire.OptionMagic)
        {
            reader.Rewind(8);
            error = NbdParseError.BadMagic;
            return OperationStatus.InvalidData;
        }

        reader.TryReadBigEndian(out int option);
        reader.TryReadBigEndian(out int length);
        header = new NbdOptionHeader((NbdOption)(uint)option, (uint)length);
        return OperationStatus.Done;
    }

    /// <summary>NBD_OPT_EXPORT_NAME data: the whole option is the name.</summary>
    public static OperationStatus TryParseExportName(ref SequenceReader<byte> reader, out string name, out NbdParseError error)
    {
        name = string.Empty;
        error = NbdParseError.None;
        var length = (int)Math.Min(reader.Remaining, NbdWire.MaxStringLength + 1);
        if (length > NbdWire.MaxStringLength || !TryDecode(ref reader, length, out name))
        {
            error = NbdParseError.BadString;
            return OperationStatus.InvalidData;
        }

        return OperationStatus.Done;
    }

    /// <summary>NBD_OPT_INFO / NBD_OPT_GO data: name length, name, count of information requests, the requests.</summary>
    public static OperationStatus TryParseExportQuery(ref SequenceReader<byte> reader, out NbdExportQuery query, out NbdParseError error)
    {
        query = default;
        if (!TryReadString(ref reader, out var name, out error))
        {
            return OperationStatus.InvalidData;
        }

        if (!reader.TryReadBigEndian(out short count) || reader.Remaining != 2L * (ushort)count)
        {
            error = NbdParseError.BadLength;
            return OperationStatus.InvalidData;
        }

        bool wantsName = false, wantsDescription = false, wantsBlockSize = false;
        for (var i = 0; i < (ushort)count; i++)
        {
            reader.TryReadBigEndian(out short info);
            switch ((NbdInfoType)(ushort)info)
            {
                case NbdInfoType.Name: wantsName = true; break;
                case NbdInfoType.Description: wantsDescription = true; break;
                case NbdInfoType.BlockSize: wantsBlockSize = true; break;
                default: break; // NBD_INFO_EXPORT is always sent; unknown requests are ignored
            }
        }

        query = new NbdExportQuery(name, wantsName, wantsDescription, wantsBlockSize);
        return OperationStatus.Done;
    }

    /// <summary>NBD_OPT_{LIST,SET}_META_CONTEXT data: export name, number of queries, each query as length and string.</summary>
    public static OperationStatus TryParseMetaContextQuery(ref SequenceReader<byte> reader, out NbdMetaContextQuery? query, out NbdParseError error)
    {
        query = null;
        if (!TryReadString(ref reader, out var name, out error))
        {
            return OperationStatus.InvalidData;
        }

        // Each query takes at least its 4-byte length, which bounds the count before anything is allocated.
        if (!reader.TryReadBigEndian(out int count) || (uint)count > reader.Remaining / 4)
        {
            error = NbdParseError.BadLength;
            return OperationStatus.InvalidData;
        }

        var queries = new string[count];
        for (var i = 0; i < queries.Length; i++)
        {
            if (!TryReadString(ref reader, out queries[i], out error))
            {
                return OperationStatus.InvalidData;
            }
        }

        if (!reader.End)
        {
            error = NbdParseError.BadLength;
            return OperationStatus.InvalidData;
        }

        query = new NbdMetaContextQuery(name, queries);
        return OperationStatus.Done;
    }

    /// <summary>A 32-bit length then that many bytes of UTF-8 (proto.md "Conventions": strings are at most 4096 bytes).</summary>
    private static bool TryReadString(ref SequenceReader<byte> reader, out string value, out NbdParseError error)
    {
        value = string.Empty;
        error = NbdParseError.None;
        if (!reader.TryReadBigEndian(out int length) || (uint)length > reader.Remaining)
        {
            error = NbdParseError.BadLength;
            return false;
        }

        if (length > NbdWire.MaxStringLength)
        {
            error = NbdParseError.BadString;
            return false;
        }

        var decoded = TryDecode(ref reader, length, out value);
        error = decoded ? NbdParseError.None : NbdParseError.BadString;
        return decoded;
    }

    /// <summary>Decodes the next <paramref name="length"/> bytes as strict UTF-8 and moves past them.</summary>
    private static bool TryDecode(ref SequenceReader<byte> reader, int length, out string value)
    {
        bool decoded;
        if (reader.UnreadSpan.Length >= length)
        {
            decoded = TryDecode(reader.UnreadSpan[..length], out value);
        }
        else
        {
            // The string spans segments: copy it out first.
            var rented = ArrayPool<byte>.Shared.Rent(length);
            reader.TryCopyTo(rented.AsSpan(0, length));
            decoded = TryDecode(rented.AsSpan(0, length), out value);
            ArrayPool<byte>.Shared.Return(rented);
        }

        reader.Advance(length);
        return decoded;
    }

    private static bool TryDecode(ReadOnlySpan<byte> bytes, out string value)
    {
        try
        {
            value = StrictUtf8.GetString(bytes);
            return true;
        }
        catch (DecoderFallbackException)
        {
            value = string.Empty;
            return false;
        }
    }
}
