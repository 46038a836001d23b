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

    public LeaseTimings Timings => options.LeaseTimings;

    public Result<LeaseGrant> Renew(LeaseRequest request)
    {
        if (cluster.Node is not { IsLeader: true } node)
        {
            return FerryError.Unavailable("this host is not the leader");
        }

        if (node.State.Host(request.Host) is not { Role: HostRole.Member })
        {
            return FerryError.NotFound($"no member host named '{request.Host}' in the cluster");
        }

        lock (_lock)
        {
            _book = BookOf(node.Term).Renewed(request.Host, Now());
        }

        return new LeaseGrant(options.HostName, node.Term);
    }

    /// <summary>The member hosts whose lease ran out with its margin, as this leader sees it (none when it does not lead).</summary>
    public IReadOnlyList<string> Failed()
    {
        if (cluster.Node is not { IsLeader: true } node)
        {
            return [];
        }

        lock (_lock)
        {
            return BookOf(node.Term).Failed(node.State.Hosts.Values.Where(h => h.Role == HostRole.Member).Select(h => h.Name), Now());
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
