using System.Collections.Immutable;
using Ferry.Agent.Vms;
using Ferry.Agent.Volumes;
using Ferry.Cluster.Reconcile;
using Ferry.Cluster.State;
using Ferry.Hypervisor;
using Ferry.Storage.Replication;
using Ferry.Storage.Replication.Wire;
using Ferry.Storage.Volumes;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Ferry.Agent.Cluster;

/// <summary>
/// Brings this host's QEMU processes and volume copies in line with the committed cluster state
/// (<see cref="LocalPlan"/>), whenever the state changes and every second, and reports what it sees
/// back into the state when that changed. Idle while the host is in no cluster.
/// </summary>
internal sealed partial class LocalManager(
    ClusterService cluster,
    LeaseKeeper lease,
    VmManager vms,
    VolumeStore store,
    VolumeReplication replication,
    HealthProbes health,
    MigrationSource migrations,
    AgentOptions options,
    TimeProvider time,
    ILoggerFactory loggers)
    : BackgroundService
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(30);

    private readonly ILogger _log = loggers.CreateLogger("Ferry.LocalManager");
    private readonly Dictionary<string, (int Failures, DateTimeOffset NotBefore, string Problem)> _backoff = new(StringComparer.Ordinal);
    private HostReport? _reported;
    private readonly Dictionary<string, long> _startedAtGrant = new(StringComparer.Ordinal);
    private readonly HostResources _resources = HostResourcesProbe.Read(options);

    /// <summary>Passes in a row that may follow one another at once; then the manager waits, whatever a step claims.</summary>
    private const int MaxPassesInARow = 10;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var inARow = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            var acted = false;
            try
            {
                // Without its lease a host runs nothing of the cluster's: the lease keeper fenced it. Nor while the
                // state says it is fenced: its VMs and primaries were taken away, and it is let back by the log.
                if (lease.Holds && cluster.State is { Cluster: not null } state && state.Host(options.HostName) is { Role: HostRole.Member, Fenced: null })
                {
                    migrations.Watch(state, stoppingToken);
                    acted = await PassAsync(state, stoppingToken).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                LogPassFailed(_log, options.HostName, e.Message);
            }

            inARow = acted ? inARow + 1 : 0;
            if (!acted || inARow >= MaxPassesInARow)
            {
                inARow = 0;
                await cluster.WaitForChangeAsync(Interval, stoppingToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>One round: plan, run the steps not backing off, report. True when a step ran (another round follows at once).</summary>
    private async Task<bool> PassAsync(ClusterState state, CancellationToken ct)
    {
        var problems = new Dictionary<string, string>(StringComparer.Ordinal);
        var acted = false;
        foreach (var step in LocalPlan.Steps(options.HostName, state, View(state)))
        {
            if (step is LocalStep.Blocked blocked)
            {
                problems[blocked.Subject] = blocked.Reason;
                continue;
            }

            if (!lease.Holds)
            {
                break;
            }

            var now = time.GetUtcNow();
            if (_backoff.TryGetValue(step.Subject, out var wait) && now < wait.NotBefore)
            {
                problems[step.Subject] = wait.Problem; // still the problem while it waits, so the report does not flip
                continue;
            }

            var error = await RunAsync(step, ct).ConfigureAwait(false);
            acted = true;
            if (error is null)
            {
                _backoff.Remove(step.Subject);
                LogStep(_log, options.HostName, step.Subject, Describe(step));
                continue;
            }

            problems[step.Subject] = $"{Describe(step)} failed: {error.Message}";
            var failures = wait.Failures + 1;
            _backoff[step.Subject] = (failures, now + TimeSpan.FromSeconds(Math.Min(MaxBackoff.TotalSeconds, 1 << Math.Min(failures, 5))), problems[step.Subject]);
            LogStepFailed(_log, options.HostName, step.Subject, Describe(step), error.Message);

            // A failed step may leave the ones after it with nothing to stand on: plan again.
            break;
        }

        await ReportAsync(problems, ct).ConfigureAwait(false);
        return acted;
    }

    /// <summary>The VM's count of granted restarts when this host last started it; after an agent restart, unknown, taken as the current count (a crash found then waits for the cluster's answer).</summary>
    private long StartedAtGrant(ClusterState state, string vm) =>
        _startedAtGrant.TryGetValue(vm, out var at) ? at : state.Vm(vm)?.Recoveries.Grants ?? 0;

    private async Task<FerryError?> RunAsync(LocalStep step, CancellationToken ct)
    {
        switch (step)
        {
            case LocalStep.StopVm stop:
                return (await vms.StopAsync(stop.Name, stop.Force, ct).ConfigureAwait(false)).Error;
            case LocalStep.ForgetVm forget:
                _startedAtGrant.Remove(forget.Name);
                return await vms.DeleteAsync(forget.Name, ct).ConfigureAwait(false);
            case LocalStep.DefineVm define:
                return (await vms.CreateAsync(define.Spec, ct, managed: true).ConfigureAwait(false)).Error;
            case LocalStep.StartVm start:
                var grants = cluster.State?.Vm(start.Name)?.Recoveries.Grants ?? 0;
                if ((await vms.StartAsync(start.Name, ct).ConfigureAwait(false)).TryGetValue(out var started, out var notStarted))
                {
                    _startedAtGrant[start.Name] = grants;
                    await StartedAsync(started, ct).ConfigureAwait(false);
                }

                return notStarted;
            case LocalStep.ResumeVm resume:
                return (await vms.ResumeAsync(resume.Name, ct).ConfigureAwait(false)).Error;
            case LocalStep.CreateCopy create:
                if ((await store.CreateSeededAsync(create.Volume, create.SizeBytes, create.Id, create.Seed, ct).ConfigureAwait(false)).Error is { } notCreated)
                {
                    return notCreated;
                }

                store.TryGet(create.Volume, out var volume);
                var settings = ReplicationSettings.StandAlone with { Role = CopyRole.Secondary, Protocol = create.Protocol, Peers = create.Peers };
                await replication.OpenManagedAsync(volume!, settings, ct).ConfigureAwait(false);
                return null;
            case LocalStep.ConfigureCopy configure:
                return await WithCopyAsync(configure.Volume, async copy =>
                {
                    await copy.ApplySettingsAsync(copy.Settings with { Protocol = configure.Protocol, Peers = configure.Peers, AllowTwoPrimaries = false }, ct).ConfigureAwait(false);
                    return null;
                }, ct).ConfigureAwait(false);
            case LocalStep.PromoteCopy promote:
                return await WithCopyAsync(promote.Volume, async copy => (await copy.PromoteAsync(promote.Epoch, force: false, ct).ConfigureAwait(false)).Error, ct).ConfigureAwait(false);
            case LocalStep.RaiseEpoch raise:
                return await WithCopyAsync(raise.Volume, async copy => (await copy.RaiseEpochAsync(raise.Epoch, ct).ConfigureAwait(false)).Error, ct).ConfigureAwait(false);
            case LocalStep.DemoteCopy demote:
                return await WithCopyAsync(demote.Volume, async copy =>
                {
                    await copy.DemoteAsync(ct).ConfigureAwait(false);
                    return null;
                }, ct).ConfigureAwait(false);
            case LocalStep.GiveUpPrimary giveUp:
                return ClusterService.ErrorOf(await cluster.ProposeAsync(new DemoteCopy(giveUp.Volume, options.HostName) { At = time.GetUtcNow() }, ct).ConfigureAwait(false));
            case LocalStep.DeleteCopy delete:
                await replication.CloseAsync(delete.Volume).ConfigureAwait(false);
                return await store.DeleteAsync(delete.Volume, ct).ConfigureAwait(false);
            default:
                throw new InvalidOperationException($"unknown step {step}");
        }
    }

    /// <summary>Puts the start in the cluster's timeline, and the first health answer after it.</summary>
    private async Task StartedAsync(VmView vm, CancellationToken ct)
    {
        await RecordAsync(new RecordEvent("vm-started", $"VM {vm.Name} started on {options.HostName} (QEMU pid {vm.Pid})", options.HostName, vm.Name), ct).ConfigureAwait(false);
        if (vm.Spec.HealthCheck is { } url)
        {
            health.Start(vm.Name, url, async after => await RecordAsync(
                new VmHealthy(vm.Name, options.HostName, $"VM {vm.Name} answered its health check on {options.HostName} {after.TotalSeconds:0.0} s after it started"),
                CancellationToken.None).ConfigureAwait(false));
        }
    }

    /// <summary>An event for the timeline; one that cannot be recorded now (no quorum) is only logged.</summary>
    private async Task RecordAsync(ClusterCommand recorded, CancellationToken ct)
    {
        LogEvent(_log, options.HostName, recorded.Kind, recorded.VmSubject ?? "");
        if (ClusterService.ErrorOf(await cluster.ProposeAsync(recorded with { At = time.GetUtcNow() }, ct).ConfigureAwait(false)) is { } error)
        {
            LogStepFailed(_log, options.HostName, recorded.VmSubject ?? "", $"record {recorded.Kind}", error.Message);
        }
    }

    /// <summary>Changes a copy and records its settings, so that it comes back the same after a restart.</summary>
    private async Task<FerryError?> WithCopyAsync(string name, Func<ReplicatedVolume, Task<FerryError?>> change, CancellationToken ct)
    {
        if (!replication.TryGet(name, out var copy))
        {
            return FerryError.NotFound($"no copy of '{name}' is open on this host");
        }

        if (await change(copy).ConfigureAwait(false) is { } error)
        {
            return error;
        }

        await VolumeReplication.SaveAsync(copy, ct).ConfigureAwait(false);
        return null;
    }

    private LocalView View(ClusterState state)
    {
        var copies = new Dictionary<string, LocalCopy>(StringComparer.Ordinal);
        foreach (var volume in store.Volumes)
        {
            if (replication.TryGet(volume.Name, out var copy))
            {
                var s = copy.Settings;
                copies[volume.Name] = new LocalCopy(copy.VolumeId, s.Role, volume.Metadata.Current.Disk, copy.Epoch, s.Managed, s.Protocol, s.Peers, s.AllowTwoPrimaries);
            }
        }

        var running = vms.List().ToDictionary(v => v.Name, v => new LocalVm(v.Spec, v.State, v.Managed, StartedAtGrant(state, v.Name)), StringComparer.Ordinal);
        return new LocalView(copies, running);
    }

    /// <summary>Tells the cluster what this host's copies and VMs are, when that differs from the last report.</summary>
    private async Task ReportAsync(Dictionary<string, string> problems, CancellationToken ct)
    {
        var copies = ImmutableDictionary.CreateBuilder<string, CopyReport>(StringComparer.Ordinal);
        foreach (var volume in store.Volumes)
        {
            if (replication.TryGet(volume.Name, out var copy) && copy.Settings.Managed)
            {
                var s = copy.CopyState();
                copies[volume.Name] = new CopyReport(s.Disk, s.Role, s.Connection, copy.Epoch, problems.GetValueOrDefault(volume.Name) ?? s.FencedReason);
            }
        }

        var running = ImmutableDictionary.CreateBuilder<string, VmReport>(StringComparer.Ordinal);
        foreach (var vm in vms.List().Where(v => v.Managed))
        {
            running[vm.Name] = new VmReport(
                vm.State, problems.GetValueOrDefault(vm.Name) ?? (vm.State == VmState.Crashed ? vm.LastExit : null), StartedAtGrant(cluster.State ?? ClusterState.Empty, vm.Name));
        }

        // A VM the cluster places here that is not defined yet has nothing to report but its problem.
        foreach (var (subject, problem) in problems.Where(p => !copies.ContainsKey(p.Key) && !running.ContainsKey(p.Key) && cluster.State?.Vm(p.Key) is not null))
        {
            running[subject] = new VmReport(VmState.Stopped, problem);
        }

        var report = new HostReport(time.GetUtcNow(), copies.ToImmutable(), running.ToImmutable(), _resources);
        if (report.SaysSameAs(_reported))
        {
            return;
        }

        var proposed = await cluster.ProposeAsync(new ReportHost(options.HostName, report) { At = report.At }, ct).ConfigureAwait(false);
        if (proposed.IsOk)
        {
            _reported = report;
        }
    }

    private static string Describe(LocalStep step) => step switch
    {
        LocalStep.StopVm { Force: true } => "stop VM (it must not run here)",
        LocalStep.StopVm => "stop VM",
        LocalStep.ForgetVm => "forget VM (placed elsewhere or deleted)",
        LocalStep.DefineVm => "define VM",
        LocalStep.StartVm => "start VM",
        LocalStep.ResumeVm => "resume VM (left paused by a migration to this host)",
        LocalStep.CreateCopy => "create copy",
        LocalStep.ConfigureCopy c => $"replicate with [{string.Join(", ", c.Peers.Select(p => p.Host))}], protocol {c.Protocol}",
        LocalStep.PromoteCopy p => $"promote copy at epoch {p.Epoch}",
        LocalStep.DemoteCopy => "demote copy",
        LocalStep.RaiseEpoch r => $"take epoch {r.Epoch} as primary",
        LocalStep.DeleteCopy => "delete copy",
        LocalStep.GiveUpPrimary => "give up the primary role (this copy was demoted without the cluster)",
        _ => step.GetType().Name,
    };

    [LoggerMessage(1200, LogLevel.Information, "host {HostId}: {Subject}: {Step}")]
    private static partial void LogStep(ILogger logger, string hostId, string subject, string step);

    [LoggerMessage(1201, LogLevel.Warning, "host {HostId}: {Subject}: {Step} failed: {Reason}")]
    private static partial void LogStepFailed(ILogger logger, string hostId, string subject, string step, string reason);

    [LoggerMessage(1203, LogLevel.Information, "host {HostId}: {Kind} of VM {VmId}")]
    private static partial void LogEvent(ILogger logger, string hostId, string kind, string vmId);

    [LoggerMessage(1202, LogLevel.Warning, "host {HostId}: local manager pass failed: {Reason}")]
    private static partial void LogPassFailed(ILogger logger, string hostId, string reason);
}
