using System.Buffers.Binary;
using System.Text;
using Ferry.Storage.Replication.Wire;

namespace Ferry.Storage.Volumes;

/// <summary>
/// The checksummed header of a volume copy's metadata file. The file holds two 4 KiB slots; each
/// update writes the slot not holding the newest valid copy, with a higher sequence number, so a torn
/// write leaves the previous superblock intact. Later regions (dirty bitmap, activity log) follow the
/// slots at offsets the superblock records.
/// </summary>
public sealed record Superblock
{
    public const int SlotSize = 4096;
    public const int Slots = 2;
    public const uint CurrentVersion = 1;
    public const int DefaultBitmapBlockSize = 4096;
    public const int MaxNameBytes = 63;

    private const ulong Magic = 0x3144_4D59_5252_4546; // "FERRYMD1" little-endian
    private const int ChecksumOffset = SlotSize - sizeof(uint);

    public required Guid VolumeId { get; init; }

    public required string Name { get; init; }

    /// <summary>Size of the volume in bytes.</summary>
    public required long Size { get; init; }

    public required DateTimeOffset CreatedAt { get; init; }

    /// <summary>Incremented on every write of the superblock; the higher valid slot wins.</summary>
    public ulong Sequence { get; init; }

    /// <summary>Bytes covered by one bit of the dirty bitmap.</summary>
    public int BitmapBlockSize { get; init; } = DefaultBitmapBlockSize;

    public GenerationIds Generations { get; init; }

    /// <summary>The highest promotion epoch this copy has seen (DESIGN invariant 2).</summary>
    public ulong HighestEpoch { get; init; }

    /// <summary>True while the volume may have writes not reflected in the on-disk bitmap (cleared on clean shutdown).</summary>
    public bool Dirty { get; init; }

    /// <summary>The current generation id this copy last knew its peer to hold (0: none); decides when a new generation starts.</summary>
    public ulong LastSharedCurrent { get; init; }

    /// <summary>The copy's disk state, persisted so that an Inconsistent copy stays so across a crash.</summary>
    public DiskState Disk { get; init; } = DiskState.UpToDate;

    /// <summary>Set while the copy is primary; still set after a crash, it says writes in flight may differ between copies.</summary>
    public bool CrashedPrimary { get; init; }

    public void Encode(Span<byte> slot)
    {
        if (slot.Length != SlotSize)
        {
            throw new ArgumentException($"a superblock slot is {SlotSize} bytes", nameof(slot));
        }

        slot.Clear();
        var w = slot;
        BinaryPrimitives.WriteUInt64LittleEndian(w, Magic);
        BinaryPrimitives.WriteUInt32LittleEndian(w[8..], CurrentVersion);
        BinaryPrimitives.WriteUInt64LittleEndian(w[12..], Sequence);
        VolumeId.TryWriteBytes(w[20..36]);
        BinaryPrimitives.WriteInt64LittleEndian(w[36..], Size);
        BinaryPrimitives.WriteInt32LittleEndian(w[44..], BitmapBlockSize);
        BinaryPrimitives.WriteUInt64LittleEndian(w[48..], Generations.Current);
        BinaryPrimitives.WriteUInt64LittleEndian(w[56..], Generations.Bitmap);
        BinaryPrimitives.WriteUInt64LittleEndian(w[64..], Generations.History1);
        BinaryPrimitives.WriteUInt64LittleEndian(w[72..], Generations.History2);
        BinaryPrimitives.WriteUInt64LittleEndian(w[80..], HighestEpoch);
        BinaryPrimitives.WriteInt64LittleEndian(w[88..], CreatedAt.ToUnixTimeMilliseconds());
        w[96] = Dirty ? (byte)1 : (byte)0;
        var nameLength = Encoding.UTF8.GetBytes(Name, w[98..(98 + MaxNameBytes)]);
        w[97] = (byte)nameLength;
        BinaryPrimitives.WriteUInt64LittleEndian(w[168..], LastSharedCurrent);
        w[176] = (byte)Disk;
        w[177] = CrashedPrimary ? (byte)1 : (byte)0;
        BinaryPrimitives.WriteUInt32LittleEndian(w[ChecksumOffset..], Crc32C.Compute(w[..ChecksumOffset]));
    }

    /// <summary>Reads one slot; false when it is empty, torn or from another format.</summary>
    public static bool TryDecode(ReadOnlySpan<byte> slot, out Superblock? superblock)
    {
        superblock = null;
        if (slot.Length != SlotSize
            || BinaryPrimitives.ReadUInt64LittleEndian(slot) != Magic
            || BinaryPrimitives.ReadUInt32LittleEndian(slot[ChecksumOffset..]) != Crc32C.Compute(slot[..ChecksumOffset])
            || BinaryPrimitives.ReadUInt32LittleEndian(slot[8..]) != CurrentVersion
            || slot[97] > MaxNameBytes
            || slot[176] > (byte)DiskState.UpToDate)
        {
            return false;
        }

        superblock = new Superblock
        {
            Sequence = BinaryPrimitives.ReadUInt64LittleEndian(slot[12..]),
            VolumeId = new Guid(slot[20..36]),
            Size = BinaryPrimitives.ReadInt64LittleEndian(slot[36..]),
            BitmapBlockSize = BinaryPrimitives.ReadInt32LittleEndian(slot[44..]),
            Generations = new GenerationIds(
                BinaryPrimitives.ReadUInt64LittleEndian(slot[48..]),
                BinaryPrimitives.ReadUInt64LittleEndian(slot[56..]),
                BinaryPrimitives.ReadUInt64LittleEndian(slot[64..]),
                BinaryPrimitives.ReadUInt64LittleEndian(slot[72..])),
            HighestEpoch = BinaryPrimitives.ReadUInt64LittleEndian(slot[80..]),
            CreatedAt = DateTimeOffset.FromUnixTimeMilliseconds(BinaryPrimitives.ReadInt64LittleEndian(slot[88..])),
            Dirty = slot[96] != 0,
            Name = Encoding.UTF8.GetString(slot.Slice(98, slot[97])),
            LastSharedCurrent = BinaryPrimitives.ReadUInt64LittleEndian(slot[168..]),
            Disk = (DiskState)slot[176],
            CrashedPrimary = slot[177] != 0,
        };
        return true;
    }

    /// <summary>The newest valid superblock among the slots of a metadata file's head, if any.</summary>
    public static Superblock? Newest(ReadOnlySpan<byte> head)
    {
        Superblock? newest = null;
        for (var i = 0; i < Slots && (i + 1) * SlotSize <= head.Length; i++)
        {
            if (TryDecode(head.Slice(i * SlotSize, SlotSize), out var candidate) && (newest is null || candidate!.Sequence > newest.Sequence))
            {
                newest = candidate;
            }
        }

        return newest;
    }

    /// <summary>The slot the next version (with <paramref name="sequence"/>) goes to: never the one holding the current version.</summary>
    public static int SlotFor(ulong sequence) => (int)(sequence % Slots);
}
