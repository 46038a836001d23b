using System.Collections.Concurrent;
using Ferry.Agent.Events;
using Ferry.Hypervisor;
using Ferry.Storage.Volumes;
using Microsoft.Extensions.Logging;

namespace Ferry.Agent.Vms;

/// <summary>
/// Runs the VMs of this host: the operations behind the API, QEMU supervision (exit and crash
/// detection) and re-attachment to VMs that outlived an agent restart.
/// </summary>
public sealed class VmManager : IAsyncDisposable
{
    private static readonly TimeSpan QuitTimeout = TimeSpan.FromSeconds(10);

    private readonly IVmRegistry _registry;
    private readonly VolumeStore _volumes;
    private readonly EventLog _events;
    private readonly AgentOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<VmManager> _logger;
    private readonly ConcurrentDictionary<string, VmRuntime> _runtimes = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _acceleratorLock = new(1, 1);
    private readonly CancellationTokenSource _shutdown = new();
    private Accelerator? _accelerator;

    public VmManager(IVmRegistry registry, VolumeStore volumes, EventLog events, AgentOptions options, TimeProvider time, ILogger<VmManager> logger)
    {
        _registry = registry;
        _volumes = volumes;
        _events = events;
        _options = options;
        _time = time;
        _logger = logger;
    }

    /// <summary>Finds the QEMU processes of registered VMs that survived an agent restart.</summary>
    public async Task InitializeAsync(CancellationToken ct)
    {
        foreach (var record in _registry.List())
        {
            var runtime = new VmRuntime(VmState.Stopped);
            _runtimes[record.Name] = runtime;
            var instance = await QemuInstance.AttachAsync(PathsOf(record.Name), e => OnQmpEvent(record.Name, runtime, e), _time, ct).ConfigureAwait(false);
            var status = instance is null ? null : await StatusOrNullAsync(instance, ct).ConfigureAwait(false);
            if (instance is not null && status is null)
            {
                // QEMU ended between being found and answering; treat it as not found.
                await instance.DisposeAsync().ConfigureAwait(false);
                instance = null;
            }

            if (instance is not null)
            {
                lock (runtime.StateLock)
                {
                    runtime.Instance = instance;
                    runtime.State = status is "paused" or "inmigrate" or "postmigrate" ? VmState.Paused : VmState.Running;
                    runtime.ExitWatcher = WatchExitAsync(record.Name, runtime, instance);
                }

                Log.VmReattached(_logger, record.Name, instance.Pid);
                _events.Append("vm.reattached", record.Name, $"found running QEMU (pid {instance.Pid}) after agent start");
                if (status == "postmigrate")
                {
                    // Its state went to another host by a live migration: this instance must never run again.
                    await StopAsync(record.Name, force: true, ct).ConfigureAwait(false);
                }
            }
            else if (record.Desired == DesiredState.Running)
            {
                runtime.State = VmState.Crashed;
                runtime.LastExit = "QEMU was not running when the agent started";
                _events.Append("vm.crashed", record.Name, "QEMU was not running when the agent started");
            }
        }
    }

    private static async Task<string?> StatusOrNullAsync(QemuInstance instance, CancellationToken ct)
    {
        try
        {
            return await instance.QueryStatusAsync(ct).ConfigureAwait(false);
        }
        catch (QmpException)
        {
            return null;
        }
    }

    /// <summary>The VMs whose disks include this volume.</summary>
    public IReadOnlyList<string> UsersOf(string volume) =>
        [.. _registry.List().Where(r => r.Spec.Disks.Any(d => d.Volume == volume)).Select(r => r.Name)];

    public IReadOnlyList<VmView> List() => [.. _registry.List().Select(View)];

    public Result<VmView> Get(string name) =>
        _registry.Find(name) is { } record ? View(record) : NotFound(name);

    public Result<string> SerialLogOf(string name) =>
        _registry.Find(name) is null ? NotFound(name) : PathsOf(name).SerialLog;

    public async Task<Result<VmView>> CreateAsync(VmSpec spec, CancellationToken ct, bool managed = false)
    {
        if (VmSpecValidator.Validate(spec, File.Exists, v => _volumes.TryGet(v, out _), HostProcess.TotalMemoryMiB()) is { } invalid)
        {
            return invalid;
        }

        if (PathsOf(spec.Name).Check() is { } pathError)
        {
            return pathError;
        }

        var record = new VmRecord(spec, DesiredState.Stopped, _time.GetUtcNow(), managed);
        if (await _registry.AddAsync(record, ct).ConfigureAwait(false) is { } conflict)
        {
            return conflict;
        }

        _runtimes[spec.Name] = new VmRuntime(VmState.Stopped);
        _events.Append("vm.created", spec.Name, $"created with {spec.VCpus} vCPU, {spec.MemoryMiB} MiB, {spec.Disks.Count} disk(s)");
        return View(record);
    }

    public Task<Result<VmView>> StartAsync(string name, CancellationToken ct) =>
        RunAsync(name, VmOperation.Start, (record, runtime, c) => StartLockedAsync(record, runtime, c), ct);

    /// <summary>
    /// Starts the VM paused, waiting for a live migration's state on <paramref name="address"/>; answers
    /// the port QEMU listens on. The VM runs once resumed.
    /// </summary>
    public async Task<Result<int>> StartIncomingAsync(string name, string address, CancellationToken ct)
    {
        var port = 0;
        var started = await RunAsync(
            name,
            VmOperation.Start,
            async (record, runtime, c) =>
            {
                var view = await StartLockedAsync(record, runtime, c, incoming: true).ConfigureAwait(false);
                if (view.IsOk)
                {
                    try
                    {
                        port = await runtime.Instance!.ListenForMigrationAsync(address, c).ConfigureAwait(false);
                    }
                    catch (QmpException e)
                    {
                        await StopLockedAsync(record, runtime, force: true, c).ConfigureAwait(false);
                        return FerryError.Environment($"QEMU of VM '{name}' cannot take a migration on {address}: {e.Message}");
                    }
                }

                return view;
            },
            ct).ConfigureAwait(false);
        return started.IsOk ? port : started.Error!;
    }

    /// <summary>
    /// Sends the running VM's state to a VM started incoming at <paramref name="uri"/> and waits until
    /// QEMU says it completed or failed (cancelling it after <paramref name="timeout"/>). Once
    /// completed the VM here is paused for good: its state lives on elsewhere.
    /// </summary>
    /// <param name="wanted">Asked while it runs: false cancels it (the cluster ended the migration meanwhile).</param>
    public async Task<Result<MigrationProgress>> MigrateAsync(string name, string uri, MigrationSettings settings, TimeSpan timeout, Func<bool> wanted, CancellationToken ct)
    {
        if (!_runtimes.TryGetValue(name, out var runtime) || runtime.Instance is not { } instance)
        {
            return FerryError.WrongState($"VM '{name}' is not running here");
        }

        try
        {
            await instance.StartMigrationAsync(uri, settings, ct).ConfigureAwait(false);
            var started = _time.GetTimestamp();
            while (true)
            {
                var progress = await instance.QueryMigrationAsync(ct).ConfigureAwait(false);
                if (progress.Completed || progress.Failed)
                {
                    _events.Append(progress.Completed ? "vm.migrated" : "vm.migration-failed", name,
                        progress.Completed ? $"state sent to {uri}, downtime {progress.Downtime?.TotalMilliseconds:0} ms" : $"migration to {uri} failed: {progress.Error ?? progress.Status}");
                    return progress;
                }

                var tooLong = _time.GetElapsedTime(started) > timeout;
                if (tooLong || !wanted())
                {
                    // Cancelled before the switch-over, the VM runs on here; one that completed meanwhile says so next time round.
                    await instance.CancelMigrationAsync(ct).ConfigureAwait(false);
                    var after = await instance.QueryMigrationAsync(ct).ConfigureAwait(false);
                    return after.Completed ? after : after with
                    {
                        Status = "cancelled",
                        Error = tooLong ? $"not done after {timeout.TotalSeconds:0} s ({progress.RemainingBytes >> 20} MiB left): cancelled" : "the cluster ended the migration: cancelled",
                    };
                }

                await Task.Delay(MigrationPoll, _time, ct).ConfigureAwait(false);
            }
        }
        catch (QmpException e)
        {
            return FerryError.Unavailable($"QEMU of VM '{name}' did not migrate: {e.Message}");
        }
    }

    /// <summary>How often a migration's progress is read: its end is noticed this late at most, and the pause lasts that much longer.</summary>
    private static readonly TimeSpan MigrationPoll = TimeSpan.FromMilliseconds(5);

    public Task<Result<VmView>> StopAsync(string name, bool force, CancellationToken ct) =>
        RunAsync(name, VmOperation.Stop, (record, runtime, c) => StopLockedAsync(record, runtime, force, c), ct);

    public Task<Result<VmView>> RestartAsync(string name, CancellationToken ct) =>
        RunAsync(
            name,
            VmOperation.Restart,
            async (record, runtime, c) =>
            {
                await StopLockedAsync(record, runtime, force: false, c).ConfigureAwait(false);
                return await StartLockedAsync(record, runtime, c).ConfigureAwait(false);
            },
            ct);

    public Task<Result<VmView>> PauseAsync(string name, CancellationToken ct) =>
        RunAsync(name, VmOperation.Pause, (record, runtime, c) => QmpStateChangeAsync(record, runtime, VmState.Paused, c), ct);

    public Task<Result<VmView>> ResumeAsync(string name, CancellationToken ct) =>
        RunAsync(name, VmOperation.Resume, (record, runtime, c) => QmpStateChangeAsync(record, runtime, VmState.Running, c), ct);

    /// <summary>
    /// Kills the VM's QEMU at once, whatever else is under way (a stop waiting on I/O that cannot
    /// complete): a power cut for this VM, when its host fences itself.
    /// </summary>
    public async Task KillAsync(string name, string reason)
    {
        if (!_runtimes.TryGetValue(name, out var runtime))
        {
            return;
        }

        QemuInstance? instance;
        Task watcher;
        lock (runtime.StateLock)
        {
            instance = runtime.Instance;
            watcher = runtime.ExitWatcher;
            if (instance is null)
            {
                return;
            }

            runtime.StopRequested = true;
            runtime.State = VmState.Stopping;
        }

        instance.Kill();
        _events.Append("vm.killed", name, $"killed (pid {instance.Pid}): {reason}");
        await watcher.ConfigureAwait(false);
    }

    public async Task<FerryError?> DeleteAsync(string name, CancellationToken ct)
    {
        var result = await RunAsync(
            name,
            VmOperation.Delete,
            async (record, runtime, c) =>
            {
                await _registry.RemoveAsync(record.Name, c).ConfigureAwait(false);
                _runtimes.TryRemove(record.Name, out _);
                _events.Append("vm.deleted", record.Name, "deleted");
                return Result<VmView>.Ok(View(record, runtime));
            },
            ct).ConfigureAwait(false);
        return result.Error;
    }

    /// <summary>Checks the operation against the VM's state under its gate, then runs it.</summary>
    private async Task<Result<VmView>> RunAsync(
        string name,
        VmOperation operation,
        Func<VmRecord, VmRuntime, CancellationToken, Task<Result<VmView>>> action,
        CancellationToken ct)
    {
        if (_registry.Find(name) is null || !_runtimes.TryGetValue(name, out var runtime))
        {
            return NotFound(name);
        }

        await runtime.Gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            // Read again under the gate: a delete may have run while this one waited.
            if (_registry.Find(name) is not { } record)
            {
                return NotFound(name);
            }

            VmState state;
            lock (runtime.StateLock)
            {
                state = runtime.State;
            }

            var (decision, error) = VmOperationRules.Decide(name, state, operation);
            if (decision == OperationDecision.Refuse)
            {
                return error!;
            }

            if (decision == OperationDecision.AlreadyDone)
            {
                // Repeating a start or stop also settles what the user wants from now on.
                var desired = operation switch
                {
                    VmOperation.Start => DesiredState.Running,
                    VmOperation.Stop => DesiredState.Stopped,
                    _ => record.Desired,
                };
                return View(await SetDesiredAsync(record, desired, ct).ConfigureAwait(false));
            }

            return await action(record, runtime, ct).ConfigureAwait(false);
        }
        finally
        {
            runtime.Gate.Release();
        }
    }

    private async Task<Result<VmView>> StartLockedAsync(VmRecord record, VmRuntime runtime, CancellationToken ct, bool incoming = false)
    {
        var name = record.Name;
        VmState previous;
        lock (runtime.StateLock)
        {
            previous = runtime.State;
            runtime.State = VmState.Starting;
            runtime.StopRequested = false;
        }

        var accelerator = await AcceleratorAsync(ct).ConfigureAwait(false);
        _events.Append("vm.starting", name, $"starting with {accelerator.ToString().ToUpperInvariant()}");
        var launched = await QemuInstance.LaunchAsync(
            _options.QemuBinary, record.Spec, PathsOf(name), accelerator, _options.NbdSocket, e => OnQmpEvent(name, runtime, e), _time, ct, incoming).ConfigureAwait(false);
        if (!launched.TryGetValue(out var instance, out var error))
        {
            lock (runtime.StateLock)
            {
                runtime.State = previous;
            }

            Log.VmStartFailed(_logger, name, error.Message);
            _events.Append("vm.start-failed", name, error.Message);
            return error;
        }

        lock (runtime.StateLock)
        {
            runtime.Instance = instance;
            runtime.State = incoming ? VmState.Paused : VmState.Running;
            runtime.Accelerator = accelerator;
            runtime.StartedAt = _time.GetUtcNow();
            runtime.LastExit = null;
            runtime.ExitWatcher = WatchExitAsync(name, runtime, instance);
        }

        Log.VmStateChanged(_logger, name, previous, incoming ? VmState.Paused : VmState.Running, incoming ? "started to take a migration" : "started");
        _events.Append("vm.started", name, incoming ? $"QEMU waiting for a migration (pid {instance.Pid})" : $"QEMU running (pid {instance.Pid})");
        return View(await SetDesiredAsync(record, DesiredState.Running, ct).ConfigureAwait(false), runtime);
    }

    /// <summary>ACPI power-off first, then QMP quit, then SIGKILL: each step only if the one before did not end QEMU.</summary>
    private async Task<Result<VmView>> StopLockedAsync(VmRecord record, VmRuntime runtime, bool force, CancellationToken ct)
    {
        var name = record.Name;
        QemuInstance? instance;
        Task watcher;
        lock (runtime.StateLock)
        {
            instance = runtime.Instance;
            watcher = runtime.ExitWatcher;
            if (instance is not null)
            {
                // Without an instance QEMU has ended already and its watcher has set the state, which stays:
                // Stopping now would never be left (a QEMU killed while it started to take a migration did this).
                runtime.StopRequested = true;
                runtime.State = VmState.Stopping;
            }
        }

        _events.Append("vm.stopping", name, force ? "stopping (forced)" : "stopping (ACPI power button)");
        if (instance is not null)
        {
            var exited = false;
            if (!force)
            {
                exited = await TryQmpAsync(name, "power off", c => PowerOffAsync(instance, c), ct).ConfigureAwait(false)
                    && await instance.WaitForExitAsync(_options.StopTimeout, ct).ConfigureAwait(false);
                if (!exited)
                {
                    _events.Append("vm.stop-escalated", name, $"guest did not power off within {_options.StopTimeout.TotalSeconds:0} s; telling QEMU to quit");
                }
            }

            if (!exited)
            {
                await TryQmpAsync(name, "quit", instance.QuitAsync, ct).ConfigureAwait(false);
                exited = await instance.WaitForExitAsync(QuitTimeout, ct).ConfigureAwait(false);
            }

            if (!exited)
            {
                _events.Append("vm.stop-escalated", name, $"QEMU did not quit; killing pid {instance.Pid}");
                instance.Kill();
            }
        }

        await watcher.ConfigureAwait(false);
        return View(await SetDesiredAsync(record, DesiredState.Stopped, ct).ConfigureAwait(false), runtime);
    }

    /// <summary>A paused guest cannot see the power button, so it is resumed first.</summary>
    private static async Task PowerOffAsync(QemuInstance instance, CancellationToken ct)
    {
        if (await instance.QueryStatusAsync(ct).ConfigureAwait(false) == "paused")
        {
            await instance.ResumeAsync(ct).ConfigureAwait(false);
        }

        await instance.PowerdownAsync(ct).ConfigureAwait(false);
    }

    private async Task<Result<VmView>> QmpStateChangeAsync(VmRecord record, VmRuntime runtime, VmState target, CancellationToken ct)
    {
        QemuInstance? instance;
        lock (runtime.StateLock)
        {
            instance = runtime.Instance;
        }

        if (instance is null)
        {
            return FerryError.WrongState($"VM '{record.Name}' is not running");
        }

        try
        {
            await (target == VmState.Paused ? instance.PauseAsync(ct) : instance.ResumeAsync(ct)).ConfigureAwait(false);
        }
        catch (QmpException e)
        {
            return FerryError.Unavailable($"QEMU of VM '{record.Name}' did not {(target == VmState.Paused ? "pause" : "resume")}: {e.Message}");
        }

        // QMP's STOP/RESUME event sets the same state; setting it here too makes the answer current.
        SetRunState(record.Name, runtime, target);
        return View(record, runtime);
    }

    private void OnQmpEvent(string name, VmRuntime runtime, QmpEvent e)
    {
        switch (e.Name)
        {
            case "STOP":
                SetRunState(name, runtime, VmState.Paused);
                break;
            case "RESUME":
                SetRunState(name, runtime, VmState.Running);
                break;
            case "SHUTDOWN":
                _events.Append("vm.shutdown", name, $"QEMU is shutting down: {QmpEvents.DescribeShutdown(e)}");
                break;
            case "GUEST_PANICKED":
                _events.Append("vm.panicked", name, "the guest kernel panicked");
                break;
            case "BLOCK_IO_ERROR":
                var error = QmpEvents.DescribeIoError(e);
                if (runtime.IoErrors.Passes(error, _time.GetUtcNow()))
                {
                    Log.VmIoError(_logger, name, error);
                    _events.Append("vm.io-error", name, error);
                }

                break;
        }
    }

    private void SetRunState(string name, VmRuntime runtime, VmState target)
    {
        VmState from;
        lock (runtime.StateLock)
        {
            from = runtime.State;
            if (from is not (VmState.Running or VmState.Paused) || from == target)
            {
                return;
            }

            runtime.State = target;
        }

        Log.VmStateChanged(_logger, name, from, target, "QMP");
        _events.Append(target == VmState.Paused ? "vm.paused" : "vm.resumed", name, target == VmState.Paused ? "paused" : "resumed");
    }

    /// <summary>Turns the end of a QEMU process into a stop (asked for, or the guest powered off) or a crash.</summary>
    private async Task WatchExitAsync(string name, VmRuntime runtime, QemuInstance instance)
    {
        QemuExit exit;
        try
        {
            exit = await instance.Exited.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return; // The agent is shutting down and leaves the VM running.
        }

        await instance.DisposeAsync().ConfigureAwait(false);
        bool crashed, requested;
        VmState from;
        lock (runtime.StateLock)
        {
            if (!ReferenceEquals(runtime.Instance, instance))
            {
                return;
            }

            from = runtime.State;
            requested = runtime.StopRequested;
            crashed = !requested && (!exit.ShutdownSeen || exit.Panicked);
            runtime.Instance = null;
            runtime.State = crashed ? VmState.Crashed : VmState.Stopped;
            runtime.LastExit = exit.Reason;
        }

        Log.VmStateChanged(_logger, name, from, crashed ? VmState.Crashed : VmState.Stopped, exit.Reason);
        if (crashed)
        {
            _events.Append("vm.crashed", name, $"QEMU (pid {instance.Pid}) ended unexpectedly: {exit.Reason}");
            return;
        }

        _events.Append("vm.stopped", name, requested ? "stopped" : $"the guest powered off ({exit.Reason})");

        // A guest that shut itself down stays down, as on real hardware. An operation running right now
        // (a stop waiting for this very exit, or a start) settles the desired state itself, so the
        // watcher only writes it when it can take the gate at once.
        if (!requested && await runtime.Gate.WaitAsync(0).ConfigureAwait(false))
        {
            try
            {
                bool stillStopped;
                lock (runtime.StateLock)
                {
                    stillStopped = runtime.State == VmState.Stopped;
                }

                if (stillStopped && _registry.Find(name) is { } record)
                {
                    await SetDesiredAsync(record, DesiredState.Stopped, _shutdown.Token).ConfigureAwait(false);
                }
            }
            finally
            {
                runtime.Gate.Release();
            }
        }
    }

    private async Task<bool> TryQmpAsync(string name, string what, Func<CancellationToken, Task> command, CancellationToken ct)
    {
        try
        {
            await command(ct).ConfigureAwait(false);
            return true;
        }
        catch (QmpException e)
        {
            Log.QmpFailed(_logger, name, what, e.Message);
            return false;
        }
    }

    private async Task<VmRecord> SetDesiredAsync(VmRecord record, DesiredState desired, CancellationToken ct)
    {
        if (record.Desired == desired)
        {
            return record;
        }

        var updated = record with { Desired = desired };
        await _registry.UpdateAsync(updated, ct).ConfigureAwait(false);
        return updated;
    }

    private async Task<Accelerator> AcceleratorAsync(CancellationToken ct)
    {
        await _acceleratorLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_accelerator is not { } chosen)
            {
                chosen = await AcceleratorProbe.ChooseAsync(_options.Accelerator, _options.QemuBinary, _time, ct).ConfigureAwait(false);
                _accelerator = chosen;
                Log.AcceleratorChosen(_logger, chosen, _options.Accelerator);
            }

            return chosen;
        }
        finally
        {
            _acceleratorLock.Release();
        }
    }

    private VmRunPaths PathsOf(string name) => new(Path.Combine(_options.VmsDirectory, name));

    private VmView View(VmRecord record) =>
        _runtimes.TryGetValue(record.Name, out var runtime) ? View(record, runtime) : View(record, new VmRuntime(VmState.Stopped));

    private static VmView View(VmRecord record, VmRuntime runtime)
    {
        lock (runtime.StateLock)
        {
            var running = runtime.State is not (VmState.Stopped or VmState.Crashed);
            return new VmView(
                record.Name,
                runtime.State,
                record.Desired,
                runtime.Instance?.Pid,
                running ? runtime.Accelerator : null,
                running ? runtime.StartedAt : null,
                runtime.LastExit,
                record.Spec,
                record.Managed);
        }
    }

    private static FerryError NotFound(string name) => FerryError.NotFound($"no VM named '{name}' (see: ferry vm list)");

    /// <summary>Lets go of every QEMU without stopping it: VMs outlive the agent.</summary>
    public async ValueTask DisposeAsync()
    {
        await _shutdown.CancelAsync().ConfigureAwait(false);
        foreach (var runtime in _runtimes.Values)
        {
            QemuInstance? instance;
            lock (runtime.StateLock)
            {
                instance = runtime.Instance;
                runtime.Instance = null;
            }

            if (instance is not null)
            {
                await instance.DisposeAsync().ConfigureAwait(false);
            }

            await runtime.ExitWatcher.ConfigureAwait(false);
        }

        _shutdown.Dispose();
        _acceleratorLock.Dispose();
    }
}
