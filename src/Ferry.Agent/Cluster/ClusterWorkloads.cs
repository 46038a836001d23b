using System.Collections.Immutable;
using Ferry.Agent.Api;
using Ferry.Agent.Vms;
using Ferry.Cluster.Reconcile;
using VmRecord = Ferry.Cluster.State.VmRecord;
using Ferry.Cluster.State;
using Ferry.Hypervisor;
using Ferry.Storage.Volumes;

namespace Ferry.Agent.Cluster;

/// <summary>
/// The cluster's volumes and VMs as users ask for them on any host: every change is a command to the
/// cluster state, which the hosts' local managers then carry out; reads come from this host's state.
/// </summary>
internal sealed class ClusterWorkloads(ClusterService cluster, VmManager vms, AgentOptions options, TimeProvider time)
{
    /// <summary>How long start and stop wait for the VM's host to report it done.</summary>
    private static readonly TimeSpan SettleTimeout = TimeSpan.FromSeconds(90);

    public Result<IReadOnlyList<ClusterVolumeView>> Volumes() =>
        State().Map(state => (IReadOnlyList<ClusterVolumeView>)[.. state.Volumes.Values.OrderBy(v => v.Name, StringComparer.Ordinal).Select(v => WorkloadViews.Volume(state, v))]);

    public Result<ClusterVolumeView> Volume(string name) =>
        State().Then(state => state.Volume(name) is { } volume ? WorkloadViews.Volume(state, volume) : (Result<ClusterVolumeView>)UnknownVolume(name));

    public async Task<Result<ClusterVolumeView>> CreateVolumeAsync(ClusterVolumeRequest request, CancellationToken ct)
    {
        var hosts = request.Hosts is { Count: > 0 } named ? [.. named] : ImmutableList.Create(options.HostName);
        var seed = (ulong)Random.Shared.NextInt64(1, long.MaxValue);
        var command = new CreateVolume(request.Name, Guid.NewGuid(), request.Size, hosts, seed, request.Protocol);
        return await ProposeAsync(command, ct).ConfigureAwait(false) is { } error ? error : Volume(request.Name);
    }

    public async Task<FerryError?> DeleteVolumeAsync(string name, CancellationToken ct) =>
        await ProposeAsync(new DeleteVolume(name), ct).ConfigureAwait(false);

    /// <summary>Moves the primary role; refused while a VM on another host runs on the volume (that is a migration).</summary>
    public async Task<Result<ClusterVolumeView>> PromoteAsync(string name, ClusterPromoteRequest request, CancellationToken ct)
    {
        if (!State().TryGetValue(out var state, out var error))
        {
            return error;
        }

        if (state.Vms.Values.FirstOrDefault(vm => vm.Desired == VmDesiredState.Running && vm.Host != request.Host && vm.Spec.Disks.Any(d => d.Volume == name)) is { } user)
        {
            return FerryError.WrongState($"VM '{user.Name}' runs on '{name}' on {user.Host ?? "the host it is being placed on"}: stop it first");
        }

        return await ProposeAsync(new PromoteCopy(name, request.Host, request.Force), ct).ConfigureAwait(false) is { } refused ? refused : Volume(name);
    }

    public Result<IReadOnlyList<VmView>> Vms() =>
        State().Map(state => (IReadOnlyList<VmView>)[.. state.Vms.Values.OrderBy(v => v.Name, StringComparer.Ordinal).Select(vm => View(state, vm))]);

    public Result<VmView> Vm(string name) =>
        State().Then(state => state.Vm(name) is { } vm ? View(state, vm) : (Result<VmView>)UnknownVm(name));

    public async Task<Result<VmView>> DefineVmAsync(VmSpec spec, RestartLimits limits, VmRules? rules, CancellationToken ct)
    {
        if (!State().TryGetValue(out var state, out var error))
        {
            return error;
        }

        // The spec's files (kernel, image disks) must be on every host that may run it; this one is checked.
        if (VmSpecValidator.Validate(spec, File.Exists, state.Volumes.ContainsKey, long.MaxValue) is { } invalid)
        {
            return invalid;
        }

        return await ProposeAsync(new DefineVm(spec, limits, rules), ct).ConfigureAwait(false) is { } refused ? refused : Vm(spec.Name);
    }

    public async Task<Result<VmView>> StartAsync(string name, CancellationToken ct)
    {
        if (!State().TryGetValue(out var state, out var error))
        {
            return error;
        }

        if (state.Vm(name) is not { } vm)
        {
            return UnknownVm(name);
        }

        // Refused up front when no host can take it, rather than left waiting for a place.
        if (vm.Host is null && Ferry.Cluster.Reconcile.Placement.Choose(state, vm).Error is { } unplaceable)
        {
            return unplaceable;
        }

        return await SetDesiredAsync(name, VmDesiredState.Running, report => report.State is VmState.Running or VmState.Paused, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// `ferry vm migrate`: moves the running VM live to <paramref name="to"/> (or where placement says) and
    /// waits until the migration ended; a failed one is an error that says why (the VM runs on where it was).
    /// </summary>
    public async Task<Result<VmView>> MigrateAsync(string name, string? to, MigrationLimits? limits, CancellationToken ct)
    {
        if (!State().TryGetValue(out var state, out var error))
        {
            return error;
        }

        if (state.Vm(name) is not { } vm)
        {
            return UnknownVm(name);
        }

        if (to is null && !Ferry.Cluster.Reconcile.Placement.MigrationTarget(state, vm).TryGetValue(out to, out var noTarget))
        {
            return noTarget;
        }

        var wait = (limits ?? MigrationLimits.Default).Timeout + TimeSpan.FromMinutes(2);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(wait);
        try
        {
            // The target's copy is brought up to date first: a resync under way is waited for, within the migration's time.
            while (Resyncing(to, name))
            {
                await cluster.WaitForChangeAsync(TimeSpan.FromMilliseconds(500), deadline.Token).ConfigureAwait(false);
            }

            var id = Guid.NewGuid();
            if (await ProposeAsync(new BeginMigration(name, to, id, Limits: limits), ct).ConfigureAwait(false) is { } refused)
            {
                return refused;
            }

            while (cluster.State?.Vm(name) is { } now)
            {
                if (now.LastMigration is { } result && result.Id == id)
                {
                    return result.Succeeded ? View(cluster.State, now) : FerryError.Unavailable($"the migration of VM '{name}' to {to} failed ({result.Error}); " +
                        (now.Host is { } host ? $"it stays on {host}" : "its host failed, and the cluster recovers it"));
                }

                await cluster.WaitForChangeAsync(TimeSpan.FromMilliseconds(200), deadline.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return FerryError.Unavailable($"VM '{name}' has not moved to {to} after {wait.TotalSeconds:0} s; see ferry vm show {name}");
        }

        return UnknownVm(name);
    }

    /// <summary>Whether a disk of the VM is being resynced to its copy on <paramref name="host"/> (one that is down or cut off is not waited for).</summary>
    private bool Resyncing(string host, string vm) =>
        cluster.State is { } state && state.Vm(vm) is { } record && BeginMigration.CopyBehind(state, record, host) is { } behind
        && state.Report(host).Copies.GetValueOrDefault(behind)?.Connection is ConnectionState.SyncTarget or ConnectionState.Connecting;

    public Task<Result<VmView>> StopAsync(string name, CancellationToken ct) =>
        SetDesiredAsync(name, VmDesiredState.Stopped, report => report.State is VmState.Stopped or VmState.Crashed, ct);

    public async Task<FerryError?> DeleteVmAsync(string name, CancellationToken ct) =>
        await ProposeAsync(new DeleteVm(name), ct).ConfigureAwait(false);

    /// <summary>Sets what the VM should be, then waits until its host reports it so (or a problem, or the timeout).</summary>
    private async Task<Result<VmView>> SetDesiredAsync(string name, VmDesiredState desired, Func<VmReport, bool> done, CancellationToken ct)
    {
        if (await ProposeAsync(new SetVmDesiredState(name, desired), ct).ConfigureAwait(false) is { } refused)
        {
            return refused;
        }

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(SettleTimeout);
        while (!deadline.IsCancellationRequested)
        {
            if (cluster.State is not { } state || state.Vm(name) is not { } vm)
            {
                return UnknownVm(name);
            }

            var report = vm.Host is { } host ? state.Report(host).Vms.GetValueOrDefault(name) : null;
            if (report is not null && (done(report) || report.Problem is not null) || desired == VmDesiredState.Stopped && vm.Host is null)
            {
                return View(state, vm);
            }

            await cluster.WaitForChangeAsync(TimeSpan.FromMilliseconds(500), deadline.Token).ConfigureAwait(false);
        }

        ct.ThrowIfCancellationRequested();
        return Vm(name);
    }

    private VmView View(ClusterState state, VmRecord vm) =>
        WorkloadViews.Vm(state, vm, vm.Host == options.HostName && vms.Get(vm.Name).TryGetValue(out var local, out _) ? local : null);

    /// <summary>Proposes the command; once the leader applied it, waits until this host has too, so that answers read from here show it.</summary>
    private async Task<FerryError?> ProposeAsync(ClusterCommand command, CancellationToken ct)
    {
        if (ClusterService.ErrorOf(await cluster.ProposeAsync(command with { At = time.GetUtcNow() }, ct).ConfigureAwait(false)) is { } error)
        {
            return error;
        }

        await cluster.CatchUpAsync(ct).ConfigureAwait(false);
        return null;
    }

    private Result<ClusterState> State() => cluster.State is { Cluster: not null } state ? state : ClusterErrors.NotInCluster;

    private static FerryError UnknownVolume(string name) => FerryError.NotFound($"no volume named '{name}' in the cluster (see: ferry volume list)");

    private static FerryError UnknownVm(string name) => FerryError.NotFound($"no VM named '{name}' in the cluster (see: ferry vm list)");
}
