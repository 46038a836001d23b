using CsCheck;
using Ferry.Storage.Replication;

namespace Ferry.Tests.Replication;

public class InFlightRangesTests
{
    [Fact]
    public void Ranges_that_do_not_overlap_go_ahead_together()
    {
        var ranges = new InFlightRanges();
        var a = ranges.Enter(0, 4096);
        var b = ranges.Enter(4096, 4096);
        Assert.Null(ranges.Blocker(a));
        Assert.Null(ranges.Blocker(b));
    }

    [Fact]
    public void A_later_overlapping_range_waits_for_the_earlier_one_and_not_the_other_way_round()
    {
        var ranges = new InFlightRanges();
        var earlier = ranges.Enter(0, 8192);
        var later = ranges.Enter(4096, 1 << 20);
        Assert.Null(ranges.Blocker(earlier));
        var blocker = ranges.Blocker(later);
        Assert.NotNull(blocker);
        Assert.False(blocker.IsCompleted);

        ranges.Exit(earlier);
        Assert.True(blocker.IsCompleted);
        Assert.Null(ranges.Blocker(later));
        ranges.Exit(later);
        Assert.Equal(0, ranges.Count);
    }

    [Fact]
    public void A_range_waits_while_any_earlier_overlapping_range_remains()
    {
        var ranges = new InFlightRanges();
        var first = ranges.Enter(0, 4096);
        var second = ranges.Enter(0, 4096);
        var third = ranges.Enter(0, 4096);
        ranges.Exit(first);
        Assert.Null(ranges.Blocker(second));
        Assert.NotNull(ranges.Blocker(third));
    }

    [Fact]
    public void Exiting_a_range_not_in_flight_is_a_bug_and_says_so() =>
        Assert.Throws<InvalidOperationException>(() => new InFlightRanges().Exit(7));

    [Fact]
    public void A_range_is_blocked_exactly_when_an_earlier_range_still_in_flight_overlaps_it() =>
        Gen.Select(Gen.Int[0, 64], Gen.Int[1, 16], Gen.Bool).Array[1, 40].Sample(steps =>
        {
            var ranges = new InFlightRanges();
            var live = new List<(long Id, long Start, long End)>();
            foreach (var (start, length, exitOldest) in steps)
            {
                if (exitOldest && live.Count > 0)
                {
                    ranges.Exit(live[0].Id);
                    live.RemoveAt(0);
                }

                live.Add((ranges.Enter(start, length), start, start + length));
                for (var i = 0; i < live.Count; i++)
                {
                    var self = live[i];
                    var expected = live.Take(i).Any(e => e.Start < self.End && self.Start < e.End);
                    Assert.Equal(expected, ranges.Blocker(self.Id) is not null);
                }
            }
        });
}
