using CsCheck;
using Ferry.Storage.Replication.Wire;
using Ferry.Storage.Volumes;

namespace Ferry.Tests.Storage;

public class SuperblockTests
{
    private static readonly Gen<Superblock> AnySuperblock =
        Gen.Select(Gen.Guid, Gen.String[Gen.Char['a', 'z'], 1, 63], Gen.Long[1, long.MaxValue], Gen.ULong, Gen.ULong, Gen.ULong, Gen.ULong, Gen.Bool)
            .Select(Gen.ULong, Gen.ULong, Gen.ULong, Gen.Enum<DiskState>(), Gen.Bool, (t, sequence, epoch, shared, disk, crashed) => new Superblock
            {
                VolumeId = t.Item1,
                Name = t.Item2,
                Size = t.Item3,
                CreatedAt = DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000),
                Generations = new GenerationIds(t.Item4, t.Item5, t.Item6, t.Item7),
                Dirty = t.Item8,
                Sequence = sequence,
                HighestEpoch = epoch,
                LastSharedCurrent = shared,
                Disk = disk,
                CrashedPrimary = crashed,
            });

    [Fact]
    public void Every_field_survives_encoding() =>
        AnySuperblock.Sample(s =>
        {
            var slot = new byte[Superblock.SlotSize];
            s.Encode(slot);
            return Superblock.TryDecode(slot, out var decoded) && decoded == s;
        });

    [Fact]
    public void Any_flipped_bit_is_detected() =>
        Gen.Select(AnySuperblock, Gen.Int[0, (Superblock.SlotSize * 8) - 1]).Sample((s, bit) =>
        {
            var slot = new byte[Superblock.SlotSize];
            s.Encode(slot);
            slot[bit / 8] ^= (byte)(1 << (bit % 8));
            return !Superblock.TryDecode(slot, out _);
        });

    [Fact]
    public void The_newest_valid_slot_wins_and_a_torn_one_falls_back_to_the_other()
    {
        var head = new byte[Superblock.SlotSize * Superblock.Slots];
        var older = new Superblock { VolumeId = Guid.NewGuid(), Name = "v", Size = 4096, CreatedAt = DateTimeOffset.UnixEpoch, Sequence = 7 };
        var newer = older with { Size = 8192, Sequence = 8 };
        older.Encode(head.AsSpan(Superblock.SlotFor(7) * Superblock.SlotSize, Superblock.SlotSize));
        newer.Encode(head.AsSpan(Superblock.SlotFor(8) * Superblock.SlotSize, Superblock.SlotSize));
        Assert.Equal(newer, Superblock.Newest(head));

        head[(Superblock.SlotFor(8) * Superblock.SlotSize) + 40] ^= 0xFF; // the newer write was torn
        Assert.Equal(older, Superblock.Newest(head));

        Assert.Null(Superblock.Newest(new byte[Superblock.SlotSize * Superblock.Slots]));
    }
}
