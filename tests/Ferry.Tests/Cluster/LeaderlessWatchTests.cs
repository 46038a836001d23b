using Ferry.Cluster.Consensus;

namespace Ferry.Tests.Cluster;

public class LeaderlessWatchTests
{
    private static TimeSpan S(double seconds) => TimeSpan.FromSeconds(seconds);

    [Fact]
    public void A_host_asks_once_it_has_known_no_leader_for_two_seconds_then_less_and_less_often()
    {
        var watch = new LeaderlessWatch();
        var asked = new List<double>();
        for (var t = 0.0; t <= 200; t += 0.5)
        {
            if (watch.Due(leaderKnown: false, S(10 + t)))
            {
                asked.Add(t);
            }
        }

        Assert.Equal([2, 7, 17, 37, 77, 137, 197], asked);
    }

    [Fact]
    public void A_leader_seen_in_between_starts_the_count_again()
    {
        var watch = new LeaderlessWatch();
        Assert.False(watch.Due(leaderKnown: false, S(0)));
        Assert.False(watch.Due(leaderKnown: false, S(1.5)));
        Assert.False(watch.Due(leaderKnown: true, S(1.9)));
        Assert.False(watch.Due(leaderKnown: false, S(2.5)));
        Assert.False(watch.Due(leaderKnown: false, S(4.4)));
        Assert.True(watch.Due(leaderKnown: false, S(4.5)));
        Assert.False(watch.Due(leaderKnown: false, S(5)));
        Assert.False(watch.Due(leaderKnown: true, S(6)));
        Assert.False(watch.Due(leaderKnown: false, S(7)));
        Assert.True(watch.Due(leaderKnown: false, S(9)));
        Assert.False(watch.Due(leaderKnown: false, S(13.9)));
        Assert.True(watch.Due(leaderKnown: false, S(14)));
    }

    [Fact]
    public void Elections_shorter_than_the_wait_never_ask()
    {
        var watch = new LeaderlessWatch();
        for (var t = 0.0; t < 600; t += 0.1)
        {
            // A leader known except for 1.5 s out of every 10 (an election a little slow each time).
            Assert.False(watch.Due(leaderKnown: t % 10 >= 1.5, S(t)));
        }
    }
}
