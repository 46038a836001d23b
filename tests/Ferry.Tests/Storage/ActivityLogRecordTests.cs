using System.Buffers.Binary;
using CsCheck;
using Ferry.Storage.Volumes;

namespace Ferry.Tests.Storage;

public class ActivityLogRecordTests
{
    private static readonly Gen<ActivityLogRecord> AnyRecord =
        Gen.Select(Gen.ULong, Gen.UInt.Array[0, ActivityLogRecord.MaxExtents], (sequence, extents) => new ActivityLogRecord(sequence, extents));

    [Fact]
    public void A_slot_holds_about_a_thousand_extents() => Assert.Equal(1018, ActivityLogRecord.MaxExtents);

    [Fact]
    public void Every_field_survives_encoding() =>
        AnyRecord.Sample(record =>
        {
            var slot = new byte[ActivityLogRecord.SlotSize];
            record.Encode(slot);
            return ActivityLogRecord.TryDecode(slot, out var decoded)
                && decoded.Sequence == record.Sequence
                && decoded.Extents.Span.SequenceEqual(record.Extents.Span);
        });

    [Fact]
    public void Any_flipped_bit_is_detected() =>
        Gen.Select(AnyRecord, Gen.Int[0, (ActivityLogRecord.SlotSize * 8) - 1]).Sample((record, bit) =>
        {
            var slot = new byte[ActivityLogRecord.SlotSize];
            record.Encode(slot);
            slot[bit / 8] ^= (byte)(1 << (bit % 8));
            return !ActivityLogRecord.TryDecode(slot, out _);
        });

    [Fact]
    public void A_count_past_the_slot_is_rejected_even_with_a_matching_checksum()
    {
        var slot = new byte[ActivityLogRecord.SlotSize];
        new ActivityLogRecord(1, new uint[] { 1, 2 }).Encode(slot);
        BinaryPrimitives.WriteInt32LittleEndian(slot.AsSpan(16), ActivityLogRecord.MaxExtents + 1);
        BinaryPrimitives.WriteUInt32LittleEndian(slot.AsSpan(ActivityLogRecord.SlotSize - 4), Crc32C.Compute(slot.AsSpan(0, ActivityLogRecord.SlotSize - 4)));
        Assert.False(ActivityLogRecord.TryDecode(slot, out _));
    }

    [Fact]
    public void Too_many_extents_cannot_be_encoded() =>
        Assert.Throws<ArgumentException>(() => new ActivityLogRecord(1, new uint[ActivityLogRecord.MaxExtents + 1]));

    [Fact]
    public void The_newest_valid_slot_wins_and_a_torn_one_falls_back_to_the_other()
    {
        var region = new byte[ActivityLogRecord.SlotSize * ActivityLogRecord.Slots];
        var older = new ActivityLogRecord(7, new uint[] { 3 });
        var newer = new ActivityLogRecord(8, new uint[] { 3, 9 });
        older.Encode(region.AsSpan(ActivityLogRecord.SlotFor(7) * ActivityLogRecord.SlotSize, ActivityLogRecord.SlotSize));
        newer.Encode(region.AsSpan(ActivityLogRecord.SlotFor(8) * ActivityLogRecord.SlotSize, ActivityLogRecord.SlotSize));
        Assert.Equal(8UL, ActivityLogRecord.Newest(region)?.Sequence);

        region[(ActivityLogRecord.SlotFor(8) * ActivityLogRecord.SlotSize) + 21] ^= 0x10; // the newer write was torn
        var survivor = ActivityLogRecord.Newest(region);
        Assert.Equal(7UL, survivor?.Sequence);
        Assert.Equal([3u], survivor!.Value.Extents.ToArray());

        Assert.Null(ActivityLogRecord.Newest(new byte[ActivityLogRecord.SlotSize * ActivityLogRecord.Slots]));
    }
}
