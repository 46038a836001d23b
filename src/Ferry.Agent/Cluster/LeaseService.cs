using Ferry.Agent.Api;
using Ferry.Cluster.Leases;
using Ferry.Cluster.State;

namespace Ferry.Agent.Cluster;

/// <summary>
/// The leader's side of leases: renewals from the hosts, in a book on this host's clock that starts
/// afresh with each term this host leads (DESIGN §5: a new leader waits a lease and margin before it
/// judges anyone).
/// </summary>
internal sealed class LeaseService(ClusterService cluster, AgentOptions options, TimeProvider time)
{
    private readonly Lock _lock = new();
    private LeaseBook? _book;
    private long _term = -1;

    private static readonly LeaseTimings Defaults = new();

    /// <summary>The cluster's timings once this host is in one (the same for every host), else the defaults.</summary>
    public LeaseTimings Timings => cluster.State?.Cluster?.LeaseTimings ?? Defaults;

    /// <summary>
    /// Renews a host's lease, unless this leader has judged it failed (it fenced itself and its VMs may be
    /// running elsewhere), or it is fenced in the state: then only once the host shows it has applied its
    /// fence, and after the host's return is committed.
    /// </summary>
    public async Task<Result<LeaseGrant>> RenewAsync(LeaseRequest request, CancellationToken ct)
    {
        if (cluster.Node is not { IsLeader: true } node)
        {
            return FerryError.Unavailable("this host is not the leader");
        }

        if (node.State.Host(request.Host) is not { Role: HostRole.Member } host)
        {
            return FerryError.NotFound($"no member host named '{request.Host}' in the cluster");
        }

        if (request.Lease is { } lease && Timings.Admits(lease) is { } tooLong)
        {
            return FerryError.WrongState($"host '{request.Host}' cannot hold a lease: {tooLong.Message}");
        }

        var received = Now();
        if (host.Fenced is { } fence)
        {
            if (request.FenceSeen != fence.At)
            {
                return FerryError.WrongState($"host '{request.Host}' is fenced since {fence.At:u} ({fence.Reason}): it renews once it has applied that");
            }

            // In the book before the return is committed: from the moment the state has the host back, the
            // fencer must find it renewed, or it would judge it by its silence from before the fence.
            lock (_lock)
            {
                _book = BookOf(node.Term).Renewed(request.Host, received);
            }

            var back = await cluster.ProposeAsync(new UnfenceHost(request.Host, fence.At) { At = time.GetUtcNow() }, ct).ConfigureAwait(false);
            return ClusterService.ErrorOf(back) is { } notBack ? notBack : new LeaseGrant(options.HostName, node.Term);
        }

        lock (_lock)
        {
            if (BookOf(node.Term).HasFailed(request.Host, received))
            {
                return FerryError.WrongState($"host '{request.Host}' missed its lease and is being fenced");
            }

            _book = BookOf(node.Term).Renewed(request.Host, received);
        }

        return new LeaseGrant(options.HostName, node.Term);
    }

    /// <summary>
    /// The member hosts, not fenced yet, whose lease ran out with its margin as this leader sees it (none when
    /// it does not lead), each with how long it has been silent.
    /// </summary>
    public IReadOnlyList<(string Host, TimeSpan Silence)> Failed()
    {
        if (cluster.Node is not { IsLeader: true } node)
        {
            return [];
        }

        var now = Now();
        lock (_lock)
        {
            var book = BookOf(node.Term);
            return [.. book.Failed(node.State.Hosts.Values.Where(h => h.Role == HostRole.Member && h.Fenced is null).Select(h => h.Name), now)
                .Select(h => (h, book.Silence(h, now)))];
        }
    }

    /// <summary>This term's book; a term this host did not lead before starts an empty one (call under the lock).</summary>
    private LeaseBook BookOf(long term)
    {
        if (_book is null || _term != term)
        {
            _book = LeaseBook.Start(Timings, Now());
            _term = term;
        }

        return _book;
    }

    /// <summary>This host's monotonic clock: leases are measured on it, never against another host's.</summary>
    private TimeSpan Now() => time.GetElapsedTime(0);
}
