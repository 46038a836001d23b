using Ferry.Cluster.State;
using Ferry.Hypervisor;
using Ferry.Storage.Replication.Wire;

namespace Ferry.Cluster.Reconcile;

/// <summary>
/// What the leader's resource manager proposes next, as a function of the state alone: a place for each
/// VM that should run and has none, and a primary for each of its volumes that has none. It never moves
/// a placed VM or takes a volume from its primary (that is migration and recovery, which fence first).
/// </summary>
public static class ResourcePlan
{
    /// <param name="now">The leader's clock, for VMs that wait for their dependencies too long (null: none waits too long).</param>
    public static IReadOnlyList<ClusterCommand> Next(ClusterState state, DateTimeOffset? now = null)
    {
        var commands = new List<ClusterCommand>();
        // A migrating VM belongs to its source and target until the migration ends.
        foreach (var vm in state.Vms.Values.Where(v => v.Desired == VmDesiredState.Running && v.Recoveries.Error is null && v.Migration is null).OrderBy(v => v.Name, StringComparer.Ordinal))
        {
            // Only one that has not started: a VM that runs is left running, whatever becomes of what it depends on.
            if (now is { } clock && !IsUp(state, vm) && Dependencies.TimedOut(state, vm, clock) is { } late)
            {
                commands.Add(new GiveUpVm(vm.Name, late));
                continue;
            }

            if (vm.Host is { } crashedOn && UnansweredCrash(state, vm, crashedOn))
            {
                commands.Add(AnswerCrash(state, vm, crashedOn));
                continue;
            }

            if (vm.Host is not { } host)
            {
                if (Placement.Choose(state, vm).TryGetValue(out var chosen, out _))
                {
                    commands.Add(new PlaceVm(vm.Name, chosen));
                }

                continue;
            }

            if (Placement.VolumesOf(vm).Select(state.Volume).Any(v => v?.Primary is { } primary && primary != host))
            {
                // Its disks were made primary elsewhere: follow them, once its host can no longer run it.
                if (CannotRun(state, vm, host) && Placement.Choose(state, vm).TryGetValue(out var next, out _) && next != host)
                {
                    commands.Add(new PlaceVm(vm.Name, next));
                }

                continue;
            }

            foreach (var volume in Placement.VolumesOf(vm).Select(state.Volume).OfType<VolumeRecord>())
            {
                if (volume.Primary is null && volume.Hosts.Contains(host) && !volume.Outdated.ContainsKey(host))
                {
                    commands.Add(new PromoteCopy(volume.Name, host));
                }
            }
        }

        if (NextMove(state) is { } move)
        {
            commands.Add(move);
        }

        return commands;
    }

    /// <summary>
    /// The next live migration that maintenance asks for, one at a time in the cluster and in start order:
    /// a VM off a drained host, else a VM back to its home once that host takes VMs again. Only one that
    /// would be accepted now.
    /// </summary>
    public static BeginMigration? NextMove(ClusterState state)
    {
        if (state.Vms.Values.Any(v => v.Migration is not null))
        {
            return null;
        }

        // In start order: what others depend on moves first.
        var running = state.Vms.Values
            .Where(v => v.Desired == VmDesiredState.Running && v.Host is not null && v.Recoveries.Error is null)
            .OrderBy(v => Dependencies.Depth(state, v))
            .ThenBy(v => v.Name, StringComparer.Ordinal)
            .ToList();
        var away = running.Where(v => state.Host(v.Host!) is { Maintenance: not null }).Select(v => Departure(state, v));
        var back = running
            .Where(v => v.Home is { } home && home != v.Host && state.Host(home) is { TakesVms: true })
            .Select(v => Accepted(state, new BeginMigration(v.Name, v.Home!, Guid.NewGuid())));
        return away.Concat(back).Where(move => move.IsOk).Select(move => move.Value).FirstOrDefault();
    }

    /// <summary>A live migration of the VM off its drained host that the state accepts now, or why there is none.</summary>
    private static Result<BeginMigration> Departure(ClusterState state, VmRecord vm) =>
        Placement.MigrationTarget(state, vm).TryGetValue(out var target, out var none)
            ? Accepted(state, new BeginMigration(vm.Name, target, Guid.NewGuid(), ForDrain: true))
            : none;

    private static Result<BeginMigration> Accepted(ClusterState state, BeginMigration move) =>
        ClusterStateMachine.Apply(state, move).Outcome.Error is { } refused ? refused : move;

    /// <summary>Whether the VM's host says it is up (running or paused).</summary>
    private static bool IsUp(ClusterState state, VmRecord vm) =>
        vm.Host is { } host && state.Report(host).Vms.GetValueOrDefault(vm.Name)?.State is VmState.Running or VmState.Paused;

    /// <summary>Whether the VM's host reports it crashed in the run the cluster last granted (a healthy host: a failed one is fenced).</summary>
    public static bool UnansweredCrash(ClusterState state, VmRecord vm, string host) =>
        state.Report(host).Vms.TryGetValue(vm.Name, out var seen) && seen.State == VmState.Crashed && seen.StartedAtGrant == vm.Recoveries.Grants;

    /// <summary>Proxmox VE's order: restart in place up to the limit, then move to another host up to that limit, then give up and say why.</summary>
    private static ClusterCommand AnswerCrash(ClusterState state, VmRecord vm, string host)
    {
        var (limits, recovery) = (vm.RestartLimits, vm.Recoveries);
        if (recovery.Restarts < limits.MaxRestarts)
        {
            return new RestartVm(vm.Name, host);
        }

        var relocate = new RelocateVm(vm.Name, host);
        if (recovery.Relocations < limits.MaxRelocations)
        {
            var (moved, outcome) = ClusterStateMachine.Apply(state, relocate);
            if (outcome.IsOk && Placement.Choose(moved, moved.Vm(vm.Name)!).IsOk)
            {
                return relocate;
            }
        }

        return new GiveUpVm(vm.Name, $"it crashed on {host} after {recovery.Restarts} restarts there and {recovery.Relocations} moves" +
            (recovery.Relocations < limits.MaxRelocations ? ", and no other host can take it" : ""));
    }

    /// <summary>
    /// Whether <paramref name="host"/> has said, in one report, that the VM is not up there and that its
    /// copies of the VM's disks are secondary: a host never starts a VM on secondary copies, so from then
    /// on the VM cannot run there, whatever it has yet to apply.
    /// </summary>
    public static bool CannotRun(ClusterState state, VmRecord vm, string host)
    {
        if (!state.Reports.TryGetValue(host, out var report))
        {
            return false;
        }

        var down = !report.Vms.TryGetValue(vm.Name, out var seen) || seen.State is VmState.Stopped or VmState.Crashed;
        return down && Placement.VolumesOf(vm).All(v => !report.Copies.TryGetValue(v, out var copy) || copy.Role == CopyRole.Secondary);
    }

    /// <summary>Why a VM that should run is not running where it is placed yet, or null when nothing holds it back.</summary>
    public static string? Waiting(ClusterState state, VmRecord vm)
    {
        if (vm.Desired != VmDesiredState.Running)
        {
            return null;
        }

        if (vm.Recoveries.Error is { } gaveUp)
        {
            return $"not restarted again: {gaveUp}";
        }

        if (vm.Host is not { } host)
        {
            return Placement.Choose(state, vm).TryGetValue(out _, out var error) ? "being placed" : error.Message;
        }

        if (vm.Migration is null && state.Host(host) is { Maintenance: not null } && Departure(state, vm).Error is { } stuck)
        {
            return $"its host {host} is drained, but it cannot move: {stuck.Message}";
        }

        if (!IsUp(state, vm) && Dependencies.Waiting(state, vm) is { } waiting)
        {
            return waiting;
        }

        foreach (var volume in Placement.VolumesOf(vm).Select(state.Volume).OfType<VolumeRecord>())
        {
            if (volume.Primary != host)
            {
                return volume.Primary is null
                    ? volume.Outdated.ContainsKey(host) ? $"its disk '{volume.Name}' is Outdated on {host}" : $"its disk '{volume.Name}' is being promoted on {host}"
                    : $"its disk '{volume.Name}' is primary on {volume.Primary}, not {host}";
            }
        }

        return null;
    }
}
