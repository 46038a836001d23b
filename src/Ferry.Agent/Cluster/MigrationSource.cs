using System.Collections.Concurrent;
using Ferry.Agent.Vms;
using Ferry.Agent.Volumes;
using Ferry.Cluster.State;
using Ferry.Hypervisor;
using Ferry.Storage.Volumes;
using Microsoft.Extensions.Logging;

namespace Ferry.Agent.Cluster;

/// <summary>
/// The source's side of a live migration, run for each migration in the state that starts on this host:
/// its copies take a second primary, the target gets ready, QEMU sends the state, and at the switch-over
/// the target is told to run and the VM here quits for good. Before the switch-over any failure aborts
/// (the VM runs on here; the target lets go); after it, the VM is the target's whatever happens next
/// (this one never runs again; if the target cannot resume it, it starts it afresh from the disks).
/// </summary>
internal sealed partial class MigrationSource(ClusterService cluster, VmManager vms, VolumeReplication replication, AgentOptions options, TimeProvider time, ILoggerFactory loggers)
{
    private static readonly TimeSpan LinkWait = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan PrepareTimeout = TimeSpan.FromSeconds(45);
    private static readonly TimeSpan ResumeTimeout = TimeSpan.FromSeconds(5);

    private readonly ILogger _log = loggers.CreateLogger("Ferry.Migration");
    private readonly ConcurrentDictionary<Guid, Task> _running = new();

    /// <summary>Starts the run of each migration from this host that is not running yet; forgets those that ended.</summary>
    public void Watch(ClusterState state, CancellationToken ct)
    {
        var current = state.Vms.Values.Select(v => v.Migration).OfType<VmMigration>().Where(m => m.Source == options.HostName).ToDictionary(m => m.Id);
        foreach (var id in _running.Keys.Where(id => !current.ContainsKey(id) && _running[id].IsCompleted))
        {
            _running.TryRemove(id, out _);
        }

        foreach (var vm in state.Vms.Values.Where(v => v.Migration is { } m && current.ContainsKey(m.Id) && !_running.ContainsKey(m.Id)))
        {
            _running[vm.Migration!.Id] = Task.Run(() => RunAsync(vm.Name, vm.Migration, ct), ct);
        }
    }

    private async Task RunAsync(string name, VmMigration migration, CancellationToken ct)
    {
        var request = new MigrationRequest(name, migration.Id);
        MigrationProgress? progress;
        try
        {
            LogStarting(_log, options.HostName, name, migration.Target);
            if (await OpenToSecondPrimaryAsync(name, migration.Target, ct).ConfigureAwait(false) is { } notOpen)
            {
                await AbortAsync(name, migration, notOpen.Message, ct).ConfigureAwait(false);
                return;
            }

            var prepared = await cluster.CallHostAsync<MigrationReady>(migration.Target, "peer/migrations/prepare", request, PrepareTimeout, ct).ConfigureAwait(false);
            if (!prepared.TryGetValue(out var ready, out var notReady))
            {
                await AbortAsync(name, migration, $"{migration.Target} could not take it: {notReady.Message}", ct).ConfigureAwait(false);
                return;
            }

            var limits = migration.Settings;
            var sent = await vms.MigrateAsync(
                name, ready.Uri, new MigrationSettings(limits.MaxDowntime, limits.BandwidthBytesPerSecond), limits.Timeout, () => Current(name, migration.Id), ct).ConfigureAwait(false);
            if (!sent.TryGetValue(out progress, out var failed) || !progress.Completed)
            {
                await AbortAsync(name, migration, failed?.Message ?? progress!.Error ?? $"QEMU says {progress!.Status}", ct).ConfigureAwait(false);
                return;
            }
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            await AbortAsync(name, migration, e.Message, ct).ConfigureAwait(false);
            return;
        }

        // Past the switch-over: the state is the target's. It runs the VM on; this one quits and never runs again.
        var switched = time.GetTimestamp();
        var resumed = await cluster.CallHostAsync<MigrationReady>(migration.Target, "peer/migrations/resume", request, ResumeTimeout, CancellationToken.None).ConfigureAwait(false);
        var resumedAfter = progress.Downtime + time.GetElapsedTime(switched);
        await vms.StopAsync(name, force: true, CancellationToken.None).ConfigureAwait(false);
        var note = resumed.Error is { } notResumed ? $"the target did not confirm it runs ({notResumed.Message}); it resumes or restarts it itself" : null;
        await CommitAsync(new CompleteMigration(name, migration.Id, progress.Downtime, resumed.IsOk ? resumedAfter : null, note), ct).ConfigureAwait(false);
        LogCompleted(_log, options.HostName, name, migration.Target, progress.Downtime?.TotalMilliseconds ?? -1, resumedAfter?.TotalMilliseconds ?? -1);
    }

    private bool Current(string name, Guid id) => cluster.State?.Vm(name)?.Migration?.Id == id;

    /// <summary>Lets each disk's copy here take the target's as a second primary, and waits until its link to the target is up and in step.</summary>
    private async Task<FerryError?> OpenToSecondPrimaryAsync(string name, string target, CancellationToken ct)
    {
        if (cluster.State?.Vm(name) is not { } vm)
        {
            return FerryError.NotFound($"VM '{name}' is gone");
        }

        foreach (var volume in Ferry.Cluster.Reconcile.Placement.VolumesOf(vm))
        {
            if (!replication.TryGet(volume, out var copy))
            {
                return FerryError.NotFound($"no copy of '{volume}' is open on {options.HostName}");
            }

            if (!copy.Settings.AllowTwoPrimaries)
            {
                await copy.ApplySettingsAsync(copy.Settings with { AllowTwoPrimaries = true }, ct).ConfigureAwait(false);
                await VolumeReplication.SaveAsync(copy, ct).ConfigureAwait(false);
            }

            var started = time.GetTimestamp();
            while (copy.CopyState() is not { Disk: Storage.Replication.Wire.DiskState.UpToDate } state
                || !state.Peers.Any(p => p.Host == target && p.Connection == ConnectionState.Connected))
            {
                if (time.GetElapsedTime(started) > LinkWait)
                {
                    return FerryError.Unavailable($"the link of '{volume}' to the target did not come back up in step within {LinkWait.TotalSeconds:0} s");
                }

                await Task.Delay(TimeSpan.FromMilliseconds(50), time, ct).ConfigureAwait(false);
            }
        }

        return null;
    }

    private async Task AbortAsync(string name, VmMigration migration, string reason, CancellationToken ct)
    {
        LogFailed(_log, options.HostName, name, migration.Target, reason);
        await CommitAsync(new AbortMigration(name, migration.Id, reason), ct).ConfigureAwait(false);
    }

    /// <summary>Proposes the migration's end until it is in the state (or another end is: a fence of either host).</summary>
    private async Task CommitAsync(ClusterCommand end, CancellationToken ct)
    {
        var id = end switch { CompleteMigration c => c.MigrationId, AbortMigration a => a.MigrationId, _ => Guid.Empty };
        while (!ct.IsCancellationRequested && Current(end.VmSubject!, id))
        {
            var outcome = await cluster.ProposeAsync(end with { At = time.GetUtcNow() }, ct).ConfigureAwait(false);
            if (ClusterService.ErrorOf(outcome) is null)
            {
                return;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(500), time, ct).ConfigureAwait(false);
        }
    }

    [LoggerMessage(1231, LogLevel.Information, "host {HostId}: migrating VM {VmId} live to {Target}")]
    private static partial void LogStarting(ILogger logger, string hostId, string vmId, string target);

    [LoggerMessage(1232, LogLevel.Information, "host {HostId}: VM {VmId} migrated to {Target}: downtime {DowntimeMs} ms, running there after {ResumedMs} ms")]
    private static partial void LogCompleted(ILogger logger, string hostId, string vmId, string target, double downtimeMs, double resumedMs);

    [LoggerMessage(1233, LogLevel.Warning, "host {HostId}: migration of VM {VmId} to {Target} failed: {Reason}")]
    private static partial void LogFailed(ILogger logger, string hostId, string vmId, string target, string reason);
}
