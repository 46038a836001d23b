using Ferry.Agent.Api;
using Ferry.Agent.Vms;
using Ferry.Agent.Volumes;
using Ferry.Agent.Watchdog;
using Ferry.Cluster.Leases;
using Ferry.Cluster.State;
using Ferry.Storage.Replication.Wire;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Ferry.Agent.Cluster;

/// <summary>
/// A member host's side of leases: it renews with the leader twice a second, and once no renewal sent
/// within the lease was acknowledged (the host is cut off, the cluster has no quorum, or this host
/// hung) it fences itself: the cluster's VMs here are killed and its copies here demoted, before the
/// leader can judge the host failed. The local manager acts only while the lease holds.
/// </summary>
internal sealed partial class LeaseKeeper(
    ClusterService cluster, LeaseService leases, VmManager vms, VolumeReplication replication, WatchdogLauncher watchdog, AgentOptions options, TimeProvider time, ILoggerFactory loggers)
    : BackgroundService
{
    private readonly ILogger _log = loggers.CreateLogger("Ferry.Lease");
    private TimeSpan? _lastAcknowledgedSend;
    private TimeSpan _since;
    private volatile bool _holds;
    private bool _fenced;

    /// <summary>Whether this host may run the cluster's VMs and hold its primaries now.</summary>
    public bool Holds => _holds;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        _since = Now();
        _lastAcknowledgedSend = (await LeaseRecord.ReadAsync(RecordPath, stoppingToken).ConfigureAwait(false))?.Sent;
        using var timer = new PeriodicTimer(leases.Timings.Renewal, time);
        do
        {
            if (cluster.State?.Host(options.HostName) is not { Role: HostRole.Member })
            {
                // In no cluster (or a witness): nothing is held, nothing to fence.
                _since = Now();
                _lastAcknowledgedSend = null;
                continue;
            }

            // The cluster's timings, from its state: the same on every host.
            var timings = leases.Timings;
            if (timer.Period != timings.Renewal)
            {
                timer.Period = timings.Renewal;
            }

            await watchdog.EnsureRunningAsync(stoppingToken).ConfigureAwait(false);
            var sent = Now();
            if (SelfFence.Due(timings, _lastAcknowledgedSend, _since, sent))
            {
                // Lost already: fenced before asking again, which may take the ask's whole wait.
                await LoseAsync("renewals went unanswered", stoppingToken).ConfigureAwait(false);
            }

            var request = new LeaseRequest(options.HostName, cluster.State?.Host(options.HostName)?.Fenced?.At, timings.SelfFenceAfter);
            var renewed = await cluster.AskLeaderOnceAsync(
                "peer/lease", PeerClient.Body(request), ct => leases.RenewAsync(request, ct), SelfFence.AnswerWait(timings, _lastAcknowledgedSend, _since, sent), stoppingToken)
                .ConfigureAwait(false);
            if (renewed.IsOk)
            {
                _lastAcknowledgedSend = sent;
                await new LeaseRecord(sent, sent + timings.SelfFenceAfter).WriteAsync(RecordPath, stoppingToken).ConfigureAwait(false);
            }
            else
            {
                await UntilLeaseEndsAsync(timings, stoppingToken).ConfigureAwait(false);
            }

            // Held only from an acknowledged renewal (this agent's, or, after a restart, its predecessor's, for
            // QEMU outlives the agent): a host that starts afresh may hold a state from before its fence, and the
            // leader renews it only once it has seen that fence. Until then it neither holds nor needs to fence.
            var due = SelfFence.Due(timings, _lastAcknowledgedSend, _since, Now());
            if (!due && _lastAcknowledgedSend is null)
            {
                continue;
            }

            if (!due)
            {
                if (!_holds)
                {
                    LogHolds(_log, options.HostName);
                }

                _holds = true;
                _fenced = false;
            }
            else
            {
                // Again on every beat while the lease is lost: whatever started in a race with the first time goes too.
                await LoseAsync(renewed.Error?.Message ?? "renewals went unanswered", stoppingToken).ConfigureAwait(false);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
    }

    /// <summary>
    /// When the lease ends before the next beat, waits for its end (a timer may fire a little early against
    /// the monotonic clock, hence the loop), so that fencing starts when the lease ends, not a beat later.
    /// </summary>
    private async Task UntilLeaseEndsAsync(LeaseTimings timings, CancellationToken ct)
    {
        var end = SelfFence.End(timings, _lastAcknowledgedSend, _since);
        if (end - Now() >= timings.Renewal)
        {
            return;
        }

        for (var rest = end - Now(); rest > TimeSpan.Zero; rest = end - Now())
        {
            await Task.Delay(rest + TimeSpan.FromMilliseconds(1), time, ct).ConfigureAwait(false);
        }
    }

    private async Task LoseAsync(string reason, CancellationToken ct)
    {
        _holds = false;
        if (!_fenced)
        {
            LogLost(_log, options.HostName, reason);
            _fenced = true;
        }

        await FenceAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Kills the cluster's VMs here and demotes the cluster's primaries here, at once.</summary>
    private async Task FenceAsync(CancellationToken ct)
    {
        // Killed, not stopped: a guest's last writes may wait on a peer that cannot be reached, and would hold a quit for good.
        // All at once: each kill waits for its QEMU to exit, and a large guest takes a while to tear down.
        await Task.WhenAll(vms.List().Where(v => v.Managed && v.Pid is not null).Select(async vm =>
        {
            await vms.KillAsync(vm.Name, "this host lost its cluster lease").ConfigureAwait(false);
            LogFenced(_log, options.HostName, $"VM {vm.Name}", "killed");
        })).ConfigureAwait(false);

        foreach (var copy in replication.Copies.Where(c => c.Settings.Managed && c.Settings.Role == CopyRole.Primary))
        {
            await copy.DemoteAsync(ct).ConfigureAwait(false);
            await VolumeReplication.SaveAsync(copy, ct).ConfigureAwait(false);
            LogFenced(_log, options.HostName, $"volume {copy.Name}", "demoted");
        }
    }

    private string RecordPath => Path.Combine(options.DataDirectory, LeaseRecord.FileName);

    /// <summary>This host's monotonic clock (since boot, the same for every process): leases are measured on it, never against another host's.</summary>
    private TimeSpan Now() => time.GetElapsedTime(0);

    [LoggerMessage(1220, LogLevel.Information, "host {HostId}: lease holds")]
    private static partial void LogHolds(ILogger logger, string hostId);

    [LoggerMessage(1221, LogLevel.Warning, "host {HostId}: lease lost ({Reason}): fencing this host")]
    private static partial void LogLost(ILogger logger, string hostId, string reason);

    [LoggerMessage(1222, LogLevel.Warning, "host {HostId}: fenced {Subject}: {Outcome}")]
    private static partial void LogFenced(ILogger logger, string hostId, string subject, string outcome);
}
