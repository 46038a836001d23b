using Ferry.Cluster.Consensus;
using Ferry.Cluster.State;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Ferry.Agent.Cluster;

/// <summary>
/// While this host knows no leader, asks the other hosts (any of them forwards to the leader) to compact
/// the cluster's log, as <see cref="LeaderlessWatch"/> decides: the way out when the consensus library
/// keeps sending this host a snapshot it already installed (<see cref="CompactLog"/>).
/// </summary>
internal sealed partial class LeaderlessRecovery(ClusterService cluster, AgentOptions options, TimeProvider time, ILoggerFactory loggers) : BackgroundService
{
    private static readonly TimeSpan Beat = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan AskWait = TimeSpan.FromSeconds(3);

    private readonly ILogger _log = loggers.CreateLogger("Ferry.Cluster");
    private readonly LeaderlessWatch _watch = new();

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Beat, time);
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
        {
            // Only a host the cluster has: one still joining or removed has nothing to catch up with.
            var leaderKnown = cluster.Node is not { } node || cluster.State?.Host(options.HostName) is null || node.Leader is not null;
            if (_watch.Due(leaderKnown, time.GetElapsedTime(0)))
            {
                await AskAsync(stoppingToken).ConfigureAwait(false);
            }
        }
    }

    private async Task AskAsync(CancellationToken ct)
    {
        var others = cluster.State?.Hosts.Keys.Where(h => h != options.HostName).ToList() ?? [];
        foreach (var host in others)
        {
            var asked = await cluster.CallHostAsync<CommandOutcome>(host, "peer/commands", new CompactLog(options.HostName) { At = time.GetUtcNow() }, AskWait, ct)
                .ConfigureAwait(false);
            if (asked.IsOk)
            {
                LogAsked(_log, options.HostName, LeaderlessWatch.After.TotalSeconds, host);
                return;
            }
        }

        LogNotAsked(_log, options.HostName, LeaderlessWatch.After.TotalSeconds, string.Join(", ", others));
    }

    [LoggerMessage(1106, LogLevel.Warning, "host {HostId}: no leader known for {Seconds} s or more: asked the cluster, through {Via}, to compact its log, so that this host catches up from a new snapshot")]
    private static partial void LogAsked(ILogger logger, string hostId, double seconds, string via);

    [LoggerMessage(1107, LogLevel.Information, "host {HostId}: no leader known for {Seconds} s or more, and none of {Hosts} took a request to compact the log")]
    private static partial void LogNotAsked(ILogger logger, string hostId, double seconds, string hosts);
}
