using CsCheck;
using Ferry.Storage.Volumes;

namespace Ferry.Tests.Storage;

public class DirtyBitmapTests
{
    private const int Block = 4096;

    /// <summary>Random marks and clears on a bitmap and on a plain bool array must agree on every block.</summary>
    [Fact]
    public void Marks_and_clears_agree_with_a_simple_model() =>
        Gen.Select(Gen.Int[1, 300], Gen.Select(Gen.Bool, Gen.Long[0, 300 * Block], Gen.Long[0, 40 * Block]).Array[0, 30])
            .Sample((blocks, operations) =>
            {
                var bitmap = new DirtyBitmap((long)blocks * Block);
                var model = new bool[blocks];
                foreach (var (mark, offset, length) in operations)
                {
                    if (mark)
                    {
                        bitmap.Mark(offset, length);
                        for (var b = offset / Block; length > 0 && b <= (offset + length - 1) / Block && b < blocks; b++)
                        {
                            model[b] = true;
                        }
                    }
                    else
                    {
                        bitmap.Clear(offset, length);
                        for (var b = (offset + Block - 1) / Block; b < (offset + length) / Block && b < blocks; b++)
                        {
                            model[b] = false;
                        }
                    }
                }

                for (var b = 0; b < blocks; b++)
                {
                    if (bitmap.IsDirty(b) != model[b])
                    {
                        return false;
                    }
                }

                return bitmap.CountDirty() == model.Count(d => d);
            });

    [Fact]
    public void Runs_cover_exactly_the_dirty_blocks() =>
        Gen.Select(Gen.Int[1, 500], Gen.Long[0, 500 * Block].Array[0, 20], Gen.Int[1, 64]).Sample((blocks, offsets, maxRun) =>
        {
            var bitmap = new DirtyBitmap((long)blocks * Block);
            foreach (var offset in offsets)
            {
                bitmap.Mark(offset, 3 * Block);
            }

            var covered = new HashSet<long>();
            for (long from = 0; bitmap.TryFindRun(from, maxRun, out var first, out var count); from = first + count)
            {
                if (count < 1 || count > maxRun)
                {
                    return false;
                }

                for (var b = first; b < first + count; b++)
                {
                    if (!bitmap.IsDirty(b) || !covered.Add(b))
                    {
                        return false;
                    }
                }
            }

            return covered.Count == bitmap.CountDirty();
        });

    [Fact]
    public void A_partial_last_block_counts_and_loaded_words_ignore_bits_past_the_end()
    {
        var bitmap = new DirtyBitmap((3 * Block) + 1);
        Assert.Equal(4, bitmap.Blocks);
        bitmap.MarkAll();
        Assert.Equal(4, bitmap.CountDirty());

        var loaded = new DirtyBitmap((3 * Block) + 1);
        loaded.Load([ulong.MaxValue]);
        Assert.Equal(4, loaded.CountDirty());
        Assert.False(loaded.TryFindRun(4, 10, out _, out _));
    }

    [Fact]
    public void Concurrent_marks_lose_no_bit()
    {
        var bitmap = new DirtyBitmap(4096L * Block);
        Parallel.For(0, 4096, b => bitmap.Mark(b * (long)Block, 1));
        Assert.Equal(4096, bitmap.CountDirty());
    }
}
