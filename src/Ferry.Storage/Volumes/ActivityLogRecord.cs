using System.Buffers.Binary;

namespace Ferry.Storage.Volumes;

/// <summary>
/// One version of a volume copy's activity log: the 4 MiB extents that may hold writes not yet
/// reflected in the on-disk dirty bitmap. Like the superblock it lives in two 4 KiB slots of the
/// metadata file, each version going to the slot <c>Sequence % 2</c>, so a torn write leaves the
/// previous version readable.
/// </summary>
/// <remarks>
/// Slot layout (little-endian): magic "FERRYAL1" (8 bytes), sequence (8), extent count (4), that many
/// extent numbers (4 each), zeroes, and in the last 4 bytes the CRC-32C of everything before them.
/// </remarks>
public readonly struct ActivityLogRecord
{
    public const int SlotSize = 4096;
    public const int Slots = 2;

    private const ulong Magic = 0x314C_4159_5252_4546; // "FERRYAL1" little-endian
    private const int SequenceOffset = 8;
    private const int CountOffset = 16;
    private const int ExtentsOffset = 20;
    private const int ChecksumOffset = SlotSize - sizeof(uint);

    /// <summary>The most extents one slot holds.</summary>
    public const int MaxExtents = (ChecksumOffset - ExtentsOffset) / sizeof(uint);

    public ActivityLogRecord(ulong sequence, ReadOnlyMemory<uint> extents)
    {
        if (extents.Length > MaxExtents)
        {
            throw new ArgumentException($"an activity log record holds at most {MaxExtents} extents, not {extents.Length}", nameof(extents));
        }

        Sequence = sequence;
        Extents = extents;
    }

    /// <summary>Incremented on every write of the log; the higher valid slot wins.</summary>
    public ulong Sequence { get; }

    /// <summary>Extent numbers (byte offset / <see cref="ActivityLog.ExtentSize"/>), in no particular order.</summary>
    public ReadOnlyMemory<uint> Extents { get; }

    public void Encode(Span<byte> slot)
    {
        if (slot.Length != SlotSize)
        {
            throw new ArgumentException($"an activity log slot is {SlotSize} bytes", nameof(slot));
        }

        slot.Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(slot, Magic);
        BinaryPrimitives.WriteUInt64LittleEndian(slot[SequenceOffset..], Sequence);
        var extents = Extents.Span;
        BinaryPrimitives.WriteInt32LittleEndian(slot[CountOffset..], extents.Length);
        for (var i = 0; i < extents.Length; i++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(slot[(ExtentsOffset + (i * sizeof(uint)))..], extents[i]);
        }

        BinaryPrimitives.WriteUInt32LittleEndian(slot[ChecksumOffset..], Crc32C.Compute(slot[..ChecksumOffset]));
    }

    /// <summary>Reads one slot; false when it is empty, torn or from another format.</summary>
    public static bool TryDecode(ReadOnlySpan<byte> slot, out ActivityLogRecord record)
    {
        record = default;
        if (slot.Length != SlotSize
            || BinaryPrimitives.ReadUInt64LittleEndian(slot) != Magic
            || BinaryPrimitives.ReadUInt32LittleEndian(slot[ChecksumOffset..]) != Crc32C.Compute(slot[..ChecksumOffset])
            || BinaryPrimitives.ReadUInt32LittleEndian(slot[CountOffset..]) > MaxExtents)
        {
            return false;
        }

        var extents = new uint[BinaryPrimitives.ReadInt32LittleEndian(slot[CountOffset..])];
        for (var i = 0; i < extents.Length; i++)
        {
            extents[i] = BinaryPrimitives.ReadUInt32LittleEndian(slot[(ExtentsOffset + (i * sizeof(uint)))..]);
        }

        record = new ActivityLogRecord(BinaryPrimitives.ReadUInt64LittleEndian(slot[SequenceOffset..]), extents);
        return true;
    }

    /// <summary>The newest valid record in the two slots of the activity log region, if any.</summary>
    public static ActivityLogRecord? Newest(ReadOnlySpan<byte> region)
    {
        ActivityLogRecord? newest = null;
        for (var i = 0; i < Slots && (i + 1) * SlotSize <= region.Length; i++)
        {
            if (TryDecode(region.Slice(i * SlotSize, SlotSize), out var candidate) && (newest is null || candidate.Sequence > newest.Value.Sequence))
            {
                newest = candidate;
            }
        }

        return newest;
    }

    /// <summary>The slot the version with <paramref name="sequence"/> goes to: never the one holding the previous version.</summary>
    public static int SlotFor(ulong sequence) => (int)(sequence % Slots);
}
