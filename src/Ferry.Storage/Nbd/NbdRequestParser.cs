using System.Buffers;

namespace Ferry.Storage.Nbd;

/// <summary>Parses transmission request headers. Pure; peer bytes never make it throw.</summary>
internal static class NbdRequestParser
{
    /// <summary>
    /// Parses one request header. <see cref="OperationStatus.NeedMoreData"/> leaves the reader untouched;
    /// <see cref="OperationStatus.InvalidData"/> (a wrong magic) means the stream cannot be resynchronised.
    /// Commands, flags and lengths are not judged here: those errors are answered and the connection lives on.
    /// </summary>
    public static OperationStatus TryParse(ref SequenceReader<byte> reader, out NbdRequest request, out NbdParseError error)
    {
        request = default;
        error = NbdParseError.None;
        if (reader.Remaining < NbdWire.RequestHeaderSize)
        {
            return OperationStatus.NeedMoreData;
        }

        reader.TryReadBigEndian(out int magic);
        if ((uint)magic != NbdWire.RequestMagic)
        {
            reader.Rewind(4);
            error = NbdParseError.BadMagic;
            return OperationStatus.InvalidData;
        }

        reader.TryReadBigEndian(out short flags);
        reader.TryReadBigEndian(out short type);
        reader.TryReadBigEndian(out long cookie);
        reader.TryReadBigEndian(out long offset);
        reader.TryReadBigEndian(out int length);
        request = new NbdRequest((NbdCommand)(ushort)type, (NbdCommandFlags)(ushort)flags, (ulong)cookie, (ulong)offset, (uint)length);
        return OperationStatus.Done;
    }
}
