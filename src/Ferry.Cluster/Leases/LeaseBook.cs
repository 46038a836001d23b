using System.Collections.Immutable;

namespace Ferry.Cluster.Leases;

/// <summary>
/// The leader's record of renewals, on its own clock. It is not replicated: a new leader starts an
/// empty book and judges nobody before <see cref="LeaseTimings.NewLeaderWait"/>, within which every
/// live host has renewed with it.
/// </summary>
public sealed record LeaseBook(LeaseTimings Timings, TimeSpan LeaderSince, ImmutableDictionary<string, TimeSpan> LastRenewal)
{
    public static LeaseBook Start(LeaseTimings timings, TimeSpan now) => new(timings, now, ImmutableDictionary<string, TimeSpan>.Empty);

    public LeaseBook Renewed(string host, TimeSpan now) => this with { LastRenewal = LastRenewal.SetItem(host, now) };

    /// <summary>The hosts (of <paramref name="hosts"/>) whose lease has run out with its margin, as of <paramref name="now"/>.</summary>
    public IReadOnlyList<string> Failed(IEnumerable<string> hosts, TimeSpan now) =>
        [.. hosts.Where(h => HasFailed(h, now)).Order(StringComparer.Ordinal)];

    /// <summary>
    /// Whether <paramref name="host"/>'s lease has run out with its margin. From then on the leader must not
    /// renew it (the host has fenced itself and the leader may recover its VMs): only a fence and the host's
    /// return through the log let it hold a lease again.
    /// </summary>
    public bool HasFailed(string host, TimeSpan now) =>
        now - LeaderSince >= Timings.NewLeaderWait && now - LastRenewal.GetValueOrDefault(host, LeaderSince) >= Timings.FailedAfter;

    /// <summary>How long ago the leader last heard from <paramref name="host"/> (or began to lead, if never).</summary>
    public TimeSpan Silence(string host, TimeSpan now) => now - LastRenewal.GetValueOrDefault(host, LeaderSince);
}

/// <summary>A host's side: when it must have fenced itself, on its own clock.</summary>
public static class SelfFence
{
    /// <summary>Whether the lease is gone: no renewal sent within the last <see cref="LeaseTimings.SelfFenceAfter"/> was acknowledged.</summary>
    /// <param name="lastAcknowledgedSend">When the last renewal the leader acknowledged was sent; null before the first.</param>
    /// <param name="since">When the host started holding VMs (its start), counted as a renewal before the first.</param>
    public static bool Due(LeaseTimings timings, TimeSpan? lastAcknowledgedSend, TimeSpan since, TimeSpan now) =>
        now >= End(timings, lastAcknowledgedSend, since);

    /// <summary>When the lease ends unless a renewal sent before then is acknowledged.</summary>
    public static TimeSpan End(LeaseTimings timings, TimeSpan? lastAcknowledgedSend, TimeSpan since) =>
        (lastAcknowledgedSend ?? since) + timings.SelfFenceAfter;

    /// <summary>
    /// How long a renewal sent at <paramref name="now"/> may wait for its answer: two beats, for a busy
    /// leader (it renews from when the request was sent), but not past the lease's end, so a host that must
    /// fence itself does so on time, not when a slow answer gives up. Once the lease is gone, two beats.
    /// </summary>
    public static TimeSpan AnswerWait(LeaseTimings timings, TimeSpan? lastAcknowledgedSend, TimeSpan since, TimeSpan now)
    {
        var left = End(timings, lastAcknowledgedSend, since) - now;
        return left > TimeSpan.Zero && left < timings.Renewal * 2 ? left : timings.Renewal * 2;
    }
}
