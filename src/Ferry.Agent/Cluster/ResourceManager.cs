using Ferry.Cluster.Reconcile;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Ferry.Agent.Cluster;

/// <summary>
/// Runs on the leader only: fences hosts whose lease ran out, and proposes what <see cref="ResourcePlan"/>
/// says the cluster needs next (a host for each VM that should run, a primary for its volumes), whenever
/// the state changes and four times a second.
/// </summary>
internal sealed partial class ResourceManager(ClusterService cluster, Fencer fencer, TimeProvider time, ILoggerFactory loggers) : BackgroundService
{
    /// <summary>Also how late, at most, a failed host is noticed after its lease and margin ran out.</summary>
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(250);

    private readonly ILogger _log = loggers.CreateLogger("Ferry.ResourceManager");

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (cluster.Node is { IsLeader: true } node)
                {
                    // Failed hosts are fenced first (in the background: a fence agent may take seconds); the plan
                    // then recovers their VMs on the others.
                    fencer.Check(node, stoppingToken);
                    foreach (var command in ResourcePlan.Next(node.State, time.GetUtcNow()))
                    {
                        var outcome = await node.ProposeAsync(command with { At = time.GetUtcNow() }, stoppingToken).ConfigureAwait(false);
                        LogProposed(_log, command.Kind, outcome.Message);
                    }
                }

                await cluster.WaitForChangeAsync(Interval, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // Deposed mid-proposal, or the node stopped: the next leader plans again from the state.
                LogFailed(_log, e.Message);
                await Task.Delay(TimeSpan.FromSeconds(1), time, stoppingToken).ConfigureAwait(false);
            }
        }
    }

    [LoggerMessage(1210, LogLevel.Information, "resource manager: {Kind}: {Outcome}")]
    private static partial void LogProposed(ILogger logger, string kind, string outcome);

    [LoggerMessage(1211, LogLevel.Warning, "resource manager: {Reason}")]
    private static partial void LogFailed(ILogger logger, string reason);
}
