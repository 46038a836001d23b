using System.Text.Json;
using CsCheck;
using Ferry.Cluster.Leases;
using Ferry.Cluster.State;

namespace Ferry.Tests.Cluster;

/// <summary>Leases: the timings' relations, the leader's book, and that a host has fenced itself before the leader judges it failed.</summary>
public class LeaseTests
{
    private static readonly LeaseTimings Defaults = new();

    private static TimeSpan S(double seconds) => TimeSpan.FromSeconds(seconds);

    [Fact]
    public void The_default_timings_hold_and_broken_ones_are_refused_with_the_reason()
    {
        Assert.Null(Defaults.Check());
        Assert.Equal((S(3), S(4), S(4)), (Defaults.SelfFenceAfter, Defaults.FailedAfter, Defaults.NewLeaderWait));
        Assert.Contains("three renewals", (Defaults with { Renewal = S(1.5) }).Check()!.Message);
        Assert.Contains("0.5 s", (Defaults with { Margin = S(0.1) }).Check()!.Message);
        Assert.Contains("positive", (Defaults with { Lease = TimeSpan.Zero }).Check()!.Message);
    }

    [Fact]
    public void A_leader_renews_only_hosts_that_fence_themselves_in_time_for_its_judgement()
    {
        Assert.Null(Defaults.Admits(Defaults.Lease));
        Assert.Null(Defaults.Admits(S(3.5)));
        Assert.Contains("too long for this leader", Defaults.Admits(S(3.6))!.Message);
        Assert.Null((Defaults with { Lease = S(10), Margin = S(5) }).Admits(S(3)));
    }

    [Fact]
    public void A_cluster_keeps_the_lease_timings_it_was_made_with_through_its_log_and_snapshots_and_refuses_broken_ones()
    {
        var slow = Defaults with { Lease = S(10), Margin = S(3) };
        InitializeCluster Init(LeaseTimings? timings) => new(Guid.NewGuid(), "c1", "ca", ClusterFixtures.Host("a"), timings) { At = ClusterFixtures.T0 };
        T RoundTrip<T>(T value) => JsonSerializer.Deserialize<T>(JsonSerializer.Serialize(value, FerryJson.Options), FerryJson.Options)!;

        var made = ClusterState.Empty.Apply(RoundTrip<ClusterCommand>(Init(slow)));
        Assert.Equal(slow, RoundTrip(made).Cluster!.LeaseTimings);
        Assert.Equal(Defaults, ClusterState.Empty.Apply(Init(null)).Cluster!.LeaseTimings);
        Assert.Contains("three renewals", ClusterState.Empty.Refused(Init(Defaults with { Lease = S(1) })).Message);
    }

    [Fact]
    public void A_new_leader_judges_nobody_for_a_lease_and_margin_then_only_the_silent()
    {
        var book = LeaseBook.Start(Defaults, S(100)).Renewed("a", S(102));
        Assert.Empty(book.Failed(["a", "b"], S(103.9)));
        Assert.Equal(["b"], book.Failed(["a", "b"], S(104)));
        Assert.Equal(["a", "b"], book.Failed(["a", "b"], S(106)));
        Assert.Empty(book.Renewed("a", S(105.5)).Renewed("b", S(105.5)).Failed(["a", "b"], S(106)));
    }

    [Fact]
    public void A_host_fences_itself_a_lease_after_its_last_acknowledged_renewal_was_sent()
    {
        Assert.False(SelfFence.Due(Defaults, null, S(0), S(2.9)));
        Assert.True(SelfFence.Due(Defaults, null, S(0), S(3)));
        Assert.False(SelfFence.Due(Defaults, S(10), S(0), S(12.9)));
        Assert.True(SelfFence.Due(Defaults, S(10), S(0), S(13)));
    }

    [Fact]
    public void A_renewal_waits_two_beats_for_its_answer_but_never_past_the_end_of_the_lease()
    {
        Assert.Equal(TimeSpan.FromSeconds(1), SelfFence.AnswerWait(Defaults, S(10), S(0), S(11)));
        Assert.Equal(TimeSpan.FromSeconds(1), SelfFence.AnswerWait(Defaults, S(10), S(0), S(12)));
        Assert.Equal(0.3, SelfFence.AnswerWait(Defaults, S(10), S(0), S(12.7)).TotalSeconds, 6);
        Assert.Equal(0.5, SelfFence.AnswerWait(Defaults, null, S(0), S(2.5)).TotalSeconds, 6);

        // Lost already (the host fenced itself before asking): the ask is for getting the lease back.
        Assert.Equal(TimeSpan.FromSeconds(1), SelfFence.AnswerWait(Defaults, S(10), S(0), S(13)));
        Assert.Equal(S(13), SelfFence.End(Defaults, S(10), S(0)));
    }

    /// <summary>
    /// Renewals every half second from a host started at 0, each lost or delivered after a delay, its
    /// acknowledgement lost or delivered after another; a leader elected at some time counts what it
    /// receives from then on. Whenever the leader's book says the host failed, the host has fenced itself.
    /// </summary>
    [Fact]
    public void Whenever_the_leader_judges_a_host_failed_the_host_has_already_fenced_itself() =>
        Gen.Select(
            Gen.Double[0, 10],
            Gen.Select(Gen.Bool, Gen.Double[0, 3], Gen.Bool, Gen.Double[0, 3], (arrives, delay, acked, ackDelay) => (arrives, delay, acked, ackDelay)).Array[1, 30])
        .Sample((leaderSince, renewals) =>
        {
            var sent = renewals.Select((r, i) => (Sent: i * 0.5, r.arrives, Received: i * 0.5 + r.delay, r.acked, AckAt: i * 0.5 + r.delay + r.ackDelay)).ToArray();
            for (var t = 0.0; t < renewals.Length * 0.5 + 10; t += 0.125)
            {
                var book = LeaseBook.Start(Defaults, S(leaderSince));
                foreach (var r in sent.Where(r => r.arrives && r.Received >= leaderSince && r.Received <= t))
                {
                    book = book.Renewed("h", S(r.Received));
                }

                var acknowledged = sent.Where(r => r.arrives && r.Received >= leaderSince && r.acked && r.AckAt <= t).Select(r => (double?)r.Sent).Max();
                if (book.Failed(["h"], S(t)).Count > 0)
                {
                    Assert.True(SelfFence.Due(Defaults, acknowledged is { } a ? S(a) : null, TimeSpan.Zero, S(t)), $"at {t} s the leader judged h failed while its lease held");
                }
            }
        }, iter: 500);
}
