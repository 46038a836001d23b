using CsCheck;
using Ferry.Storage.Replication;
using Ferry.Storage.Volumes;

namespace Ferry.Tests.Replication;

public sealed class UnflushedWritesTests
{
    private const int Block = 4096;
    private const long Size = 64 * Block;

    [Fact]
    public void A_flush_forgets_what_came_before_it_and_a_loss_marks_what_came_after()
    {
        var unflushed = new UnflushedWrites(Size, Block);
        Assert.True(unflushed.IsEmpty);
        unflushed.Written(0, Block);
        unflushed.Flushed();
        Assert.True(unflushed.IsEmpty);

        unflushed.Written(3 * Block, 2 * Block);
        var bitmap = new DirtyBitmap(Size, Block);
        unflushed.MarkIn(bitmap, null);
        Assert.Equal([false, false, false, true, true, false], Enumerable.Range(0, 6).Select(b => bitmap.IsDirty(b)));
        Assert.True(unflushed.IsEmpty);
    }

    /// <summary>Whatever the writes and flushes, and past the exact list's capacity, a loss marks exactly the blocks written since the last flush.</summary>
    [Fact]
    public void A_loss_marks_exactly_the_blocks_written_since_the_last_flush()
    {
        // (0, _, _) is a flush; otherwise a write of count blocks from block first.
        Gen.Select(Gen.Int[0, 10], Gen.Int[0, 63], Gen.Int[1, 4]).Array[0, 40].Sample(steps =>
        {
            var unflushed = new UnflushedWrites(Size, Block, capacity: 3);
            var expected = new HashSet<long>();
            foreach (var (kind, first, count) in steps)
            {
                if (kind == 0)
                {
                    unflushed.Flushed();
                    expected.Clear();
                    continue;
                }

                var w = (first * (long)Block, Math.Min(count, 64 - first) * (long)Block);
                unflushed.Written(w.Item1, w.Item2);
                for (var b = w.Item1 / Block; b < (w.Item1 + w.Item2) / Block; b++)
                {
                    expected.Add(b);
                }
            }

            var bitmap = new DirtyBitmap(Size, Block);
            var lacks = new DirtyBitmap(Size, Block);
            Assert.Equal(expected.Count == 0, unflushed.IsEmpty);
            unflushed.MarkIn(bitmap, lacks);
            var marked = Enumerable.Range(0, 64).Where(b => bitmap.IsDirty(b)).Select(b => (long)b).ToHashSet();
            Assert.Equal(expected.Order(), marked.Order());
            Assert.Equal(marked.Order(), Enumerable.Range(0, 64).Where(b => lacks.IsDirty(b)).Select(b => (long)b).Order());
            Assert.True(unflushed.IsEmpty);
        });
    }
}
