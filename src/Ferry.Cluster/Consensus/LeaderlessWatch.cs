namespace Ferry.Cluster.Consensus;

/// <summary>
/// Decides when a host that knows no leader asks the cluster to compact its log (<see cref="State.CompactLog"/>):
/// once it has known none for <see cref="After"/>, then again after 5, 10, 20 s and every minute at most,
/// for as long as it knows none. An election takes well under <see cref="After"/>; a host cut off cannot
/// reach anyone to ask, and a cluster without a quorum cannot commit the request, so asking costs nothing then.
/// </summary>
public sealed class LeaderlessWatch
{
    public static readonly TimeSpan After = TimeSpan.FromSeconds(2);

    private static readonly TimeSpan FirstInterval = TimeSpan.FromSeconds(5);

    private static readonly TimeSpan LongestInterval = TimeSpan.FromMinutes(1);

    private TimeSpan? _since;
    private TimeSpan? _lastAsk;
    private TimeSpan _interval = FirstInterval;

    /// <summary>Whether to ask now, given whether a leader is known at <paramref name="now"/> (a monotonic time).</summary>
    public bool Due(bool leaderKnown, TimeSpan now)
    {
        if (leaderKnown)
        {
            _since = null;
            _lastAsk = null;
            _interval = FirstInterval;
            return false;
        }

        _since ??= now;
        if (now - _since < After)
        {
            return false;
        }

        if (_lastAsk is { } last)
        {
            if (now - last < _interval)
            {
                return false;
            }

            _interval = TimeSpan.FromTicks(Math.Min(_interval.Ticks * 2, LongestInterval.Ticks));
        }

        _lastAsk = now;
        return true;
    }
}
