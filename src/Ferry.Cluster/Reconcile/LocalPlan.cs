using Ferry.Cluster.State;
using Ferry.Storage.Replication;
using Ferry.Hypervisor;
using Ferry.Storage.Replication.Wire;

namespace Ferry.Cluster.Reconcile;

/// <summary>
/// What a host's local manager does next, as a function of the committed state and what runs here: VMs
/// that must not run here stop first, then volume roles follow the state (demotions before promotions),
/// then VMs placed here start once their disks are primary here. Steps are in the order to run them;
/// a step that depends on an earlier one of a later kind waits for the next pass. A VM being migrated
/// live, and its disks, are left to the migration on its source and target.
/// </summary>
public static class LocalPlan
{
    public static IReadOnlyList<LocalStep> Steps(string me, ClusterState state, LocalView local)
    {
        var steps = new List<LocalStep>();
        StopVms(me, state, local, steps);
        var leaving = steps.OfType<LocalStep.ForgetVm>().Select(s => s.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var (name, copy) in Ordered(local.Copies))
        {
            if (copy.Managed && Wanted(me, state, name, copy) is null)
            {
                // A copy the cluster no longer has here; a VM that stays (not the cluster's) still holds it.
                var user = local.Vms.FirstOrDefault(vm => !leaving.Contains(vm.Key) && Uses(vm.Value, name)).Key;
                steps.Add(user is null ? new LocalStep.DeleteCopy(name) : new LocalStep.Blocked(name, $"VM '{user}' on this host still uses it"));
            }
        }

        var handedOver = state.Vms.Values.Where(v => Migrating(me, v)).SelectMany(Placement.VolumesOf).ToHashSet(StringComparer.Ordinal);
        foreach (var volume in state.Volumes.Values.Where(v => v.Hosts.Contains(me) && !handedOver.Contains(v.Name)).OrderBy(v => v.Name, StringComparer.Ordinal))
        {
            Reconcile(me, state, volume, local.Copies.GetValueOrDefault(volume.Name), steps);
        }

        StartVms(me, state, local, steps);
        return steps;
    }

    /// <summary>The peers a copy here replicates with: every other host of the volume, at its replication address.</summary>
    public static IReadOnlyList<PeerAddress> PeersOf(string me, ClusterState state, VolumeRecord volume) =>
    [
        .. volume.Hosts.Where(h => h != me).Select(h => new PeerAddress(h, state.Host(h)?.ReplicationAddress ?? "")).Where(p => p.Address.Length > 0),
    ];

    private static void StopVms(string me, ClusterState state, LocalView local, List<LocalStep> steps)
    {
        foreach (var (name, vm) in Ordered(local.Vms).Where(pair => pair.Value.Managed && !(state.Vm(pair.Key) is { } r && Migrating(me, r))))
        {
            var record = state.Vm(name);
            var staysHere = record is not null && record.Host == me;
            var disksHere = record is not null && Placement.VolumesOf(record).All(v => state.Volume(v)?.Primary == me);
            if (vm.IsUp && (!staysHere || !disksHere))
            {
                steps.Add(new LocalStep.StopVm(name, Force: true));
            }
            else if (vm.IsUp && record!.Desired == VmDesiredState.Stopped)
            {
                steps.Add(new LocalStep.StopVm(name, Force: false));
            }

            if (!staysHere)
            {
                steps.Add(new LocalStep.ForgetVm(name));
            }
        }
    }

    private static void Reconcile(string me, ClusterState state, VolumeRecord volume, LocalCopy? copy, List<LocalStep> steps)
    {
        var peers = PeersOf(me, state, volume);
        if (copy is null)
        {
            steps.Add(new LocalStep.CreateCopy(volume.Name, volume.Id, volume.SizeBytes, volume.Seed, volume.Protocol, peers));
            return;
        }

        if (!copy.Managed || copy.Id != volume.Id)
        {
            steps.Add(new LocalStep.Blocked(volume.Name, $"a volume named '{volume.Name}' that the cluster did not create is on this host; rename or delete it"));
            return;
        }

        if (copy.Protocol != volume.Protocol || !copy.Peers.SequenceEqual(peers) || copy.AllowTwoPrimaries)
        {
            steps.Add(new LocalStep.ConfigureCopy(volume.Name, volume.Protocol, peers));
        }

        if (volume.Primary == me && copy.Role == CopyRole.Secondary)
        {
            steps.Add(copy.Epoch < volume.Epoch
                ? new LocalStep.PromoteCopy(volume.Name, volume.Epoch)
                : new LocalStep.GiveUpPrimary(volume.Name));
        }
        else if (volume.Primary == me && copy.Epoch < volume.Epoch)
        {
            steps.Add(new LocalStep.RaiseEpoch(volume.Name, volume.Epoch));
        }
        else if (volume.Primary != me && copy.Role == CopyRole.Primary)
        {
            steps.Add(new LocalStep.DemoteCopy(volume.Name));
        }
    }

    private static void StartVms(string me, ClusterState state, LocalView local, List<LocalStep> steps)
    {
        foreach (var vm in state.Vms.Values.Where(v => v.Host == me && !Migrating(me, v)).OrderBy(v => v.Name, StringComparer.Ordinal))
        {
            var volumes = Placement.VolumesOf(vm).ToList();
            if (!volumes.All(local.Copies.ContainsKey))
            {
                continue; // its copies are created first
            }

            if (!local.Vms.TryGetValue(vm.Name, out var here))
            {
                steps.Add(new LocalStep.DefineVm(vm.Spec));
                continue;
            }

            if (!here.Managed)
            {
                steps.Add(new LocalStep.Blocked(vm.Name, $"a VM named '{vm.Name}' that the cluster did not define is on this host; rename or delete it"));
                continue;
            }

            var disksReady = volumes.All(v => state.Volume(v)?.Primary == me && local.Copies[v].Role == CopyRole.Primary);
            if (vm.Desired != VmDesiredState.Running || !disksReady)
            {
                continue;
            }

            // A crash is restarted only once the cluster granted it (a restart counted against the VM's limit).
            LocalStep? run = here.State == VmState.Stopped || (here.State == VmState.Crashed && here.StartedAtGrant < vm.Recoveries.Grants)
                ? Dependencies.Waiting(state, vm) is { } waiting ? new LocalStep.Blocked(vm.Name, waiting) : new LocalStep.StartVm(vm.Name)
                : here.State == VmState.Paused ? new LocalStep.ResumeVm(vm.Name)
                : null;

            // Never twice: not while another host, not fenced, still says the VM is up there (a migration's
            // target letting go of it, or a host that has not applied the move yet).
            if (run is not null && UpElsewhere(me, state, vm.Name) is { } elsewhere)
            {
                run = new LocalStep.Blocked(vm.Name, $"waiting for {elsewhere}, which still reports VM '{vm.Name}' up, to stop it");
            }

            if (run is not null)
            {
                steps.Add(run);
            }
        }
    }

    /// <summary>Whether <paramref name="vm"/> is being migrated from or to this host.</summary>
    private static bool Migrating(string me, VmRecord vm) => vm.Migration is { } m && (m.Source == me || m.Target == me);

    private static string? UpElsewhere(string me, ClusterState state, string vm) =>
        state.Reports.FirstOrDefault(r => r.Key != me && state.Host(r.Key) is { Fenced: null }
            && r.Value.Vms.GetValueOrDefault(vm)?.State is VmState.Running or VmState.Paused or VmState.Starting or VmState.Stopping).Key;

    /// <summary>The volume record a managed copy here belongs to, or null when the cluster has no such copy here.</summary>
    private static VolumeRecord? Wanted(string me, ClusterState state, string name, LocalCopy copy) =>
        state.Volume(name) is { } volume && volume.Id == copy.Id && volume.Hosts.Contains(me) ? volume : null;

    private static bool Uses(LocalVm vm, string volume) => vm.Spec.Disks.Any(d => d.Volume == volume);

    private static IEnumerable<KeyValuePair<string, T>> Ordered<T>(IReadOnlyDictionary<string, T> items) =>
        items.OrderBy(pair => pair.Key, StringComparer.Ordinal);
}
