using System.IO.Hashing;
using Ferry.Storage.Replication.Wire;

namespace Ferry.Storage.Replication;

/// <summary>
/// The checksums two copies compare (verify, checksum resync): XXH3 64-bit of each 4 KiB block; the
/// last block of a range may be shorter. Fast enough to run at memory speed, and a false match between
/// different blocks is a 2^-64 event.
/// </summary>
internal static class BlockChecksums
{
    public static int Count(long length) => (int)((length + LinkWire.ChecksumBlock - 1) / LinkWire.ChecksumBlock);

    public static void Compute(ReadOnlySpan<byte> data, Span<ulong> checksums)
    {
        for (var i = 0; !data.IsEmpty; i++)
        {
            var block = data[..Math.Min(LinkWire.ChecksumBlock, data.Length)];
            checksums[i] = XxHash3.HashToUInt64(block);
            data = data[block.Length..];
        }
    }
}
