using Ferry.Cluster.State;
using Ferry.Placement;

namespace Ferry.Cluster.Reconcile;

/// <summary>
/// Where a VM may run: on a member host that takes VMs (not fenced, not in maintenance) and holds a copy
/// of each of its volumes, none of them Outdated, that is already the primary of those that have one (a
/// VM moves with its volumes, not away from them), and that is not the host the VM was moved away from
/// after crashing there. Among those, <see cref="Placer"/> picks by capacity, twins and preferences.
/// </summary>
public static class Placement
{
    /// <summary>
    /// A host for a VM that should run: one that keeps N+1 (a started VM was admitted under it); else,
    /// for a failed host's VMs that must run somewhere, any with the room; else one next to a twin.
    /// </summary>
    public static Result<string> Choose(ClusterState state, VmRecord vm)
    {
        if (!Candidates(state, vm).TryGetValue(out var candidates, out var error))
        {
            return error;
        }

        var (hosts, placed, demand) = (Hosts(state), Placed(state), Demand(state, vm));
        var kept = Placer.Choose(hosts, placed, demand, keepNPlusOne: true, candidates);
        return kept.IsOk ? kept
            : Placer.Choose(hosts, placed, demand, keepNPlusOne: false, candidates) is { IsOk: true } roomy ? roomy
            : Placer.Choose(hosts, placed, demand, keepNPlusOne: false, candidates, twinsApart: false) is { IsOk: true } together ? together
            : kept;
    }

    /// <summary>
    /// Where a running VM may move live: another host that takes VMs and holds a current copy of each of
    /// its disks, keeping N+1 if it can, else with the room (a drain must empty its host).
    /// </summary>
    public static Result<string> MigrationTarget(ClusterState state, VmRecord vm)
    {
        List<string> among = [.. state.Hosts.Values.Where(h => h.TakesVms && h.Name != vm.Host && HoldsCurrentCopies(state, vm, h.Name)).Select(h => h.Name).Order(StringComparer.Ordinal)];
        if (among.Count == 0)
        {
            return FerryError.WrongState($"no other host that takes VMs holds an up-to-date copy of every disk of VM '{vm.Name}'");
        }

        var (hosts, placed, demand) = (Hosts(state), Placed(state), Demand(state, vm));
        var kept = Placer.Choose(hosts, placed, demand, keepNPlusOne: true, among);
        return kept.IsOk ? kept : Placer.Choose(hosts, placed, demand, keepNPlusOne: false, among);
    }

    /// <summary>
    /// Why the VM may not start now, or null: it must fit (on its host, when it has one) next to the
    /// running VMs, away from its twins, keeping N+1 (unless the cluster's setting turned it off). A VM held back by its disks is not refused: it
    /// waits, and says why.
    /// </summary>
    public static FerryError? Refusal(ClusterState state, VmRecord vm)
    {
        if (!Candidates(state, vm).TryGetValue(out var candidates, out _))
        {
            return null;
        }

        if (vm.Host is { } host && candidates.Contains(host))
        {
            candidates = [host];
        }

        return Placer.Choose(Hosts(state), Placed(state), Demand(state, vm), keepNPlusOne: state.Cluster?.NPlusOne ?? true, candidates).Error;
    }

    /// <summary>The VMs that take room: those that should run and have a host, each with the hosts it could restart on.</summary>
    public static IReadOnlyList<VmDemand> Placed(ClusterState state) =>
    [
        .. state.Vms.Values
            .Where(v => v.Desired == VmDesiredState.Running && v.Host is not null)
            .OrderBy(v => v.Name, StringComparer.Ordinal)
            .Select(v => Demand(state, v)),
    ];

    /// <summary>The member hosts with what they give VMs; one that has not reported yet is taken as unbounded (and tried last).</summary>
    public static IReadOnlyList<HostCapacity> Hosts(ClusterState state) =>
    [
        .. state.Hosts.Values
            .Where(h => h.Role == HostRole.Member)
            .OrderBy(h => h.Name, StringComparer.Ordinal)
            .Select(h => state.Report(h.Name).Resources is { } r
                ? new HostCapacity(h.Name, r.MemoryMiB, r.Cpus, r.ReservedMiB, h.TakesVms)
                : new HostCapacity(h.Name, UnknownMiB, UnknownCpus, 0, h.TakesVms, Reported: false)),
    ];

    /// <summary>The VM as placement sees it; it could run on any member holding a current copy of each of its disks.</summary>
    public static VmDemand Demand(ClusterState state, VmRecord vm) => new(
        vm.Name,
        vm.Spec.MemoryMiB,
        vm.Spec.VCpus,
        vm.Host,
        vm.PlacementRules.AntiAffinity,
        [.. state.Hosts.Values.Where(h => h.Role == HostRole.Member).Select(h => h.Name).Where(h => HoldsCurrentCopies(state, vm, h))],
        vm.PlacementRules.Prefer);

    public static IEnumerable<string> VolumesOf(VmRecord vm) => vm.Spec.Disks.Select(d => d.Volume).OfType<string>();

    private const long UnknownMiB = long.MaxValue / 4;
    private const int UnknownCpus = 1 << 20;

    private static bool HoldsCurrentCopies(ClusterState state, VmRecord vm, string host) =>
        VolumesOf(vm).Select(state.Volume).All(v => v is not null && v.Hosts.Contains(host) && !v.Outdated.ContainsKey(host));

    /// <summary>The hosts the VM's disks allow now, or why there are none.</summary>
    private static Result<List<string>> Candidates(ClusterState state, VmRecord vm)
    {
        var volumes = new List<VolumeRecord>();
        foreach (var name in VolumesOf(vm))
        {
            if (state.Volume(name) is not { } volume)
            {
                return FerryError.NotFound($"VM '{vm.Name}' uses volume '{name}', which does not exist");
            }

            volumes.Add(volume);
        }

        var primaries = volumes.Select(v => v.Primary).OfType<string>().Distinct(StringComparer.Ordinal).ToList();
        if (primaries.Count > 1)
        {
            return FerryError.WrongState($"the disks of VM '{vm.Name}' are primary on different hosts ({string.Join(", ", primaries)}): promote them on one host");
        }

        var candidates = state.Hosts.Values
            .Where(h => h.TakesVms && h.Name != vm.Recoveries.Avoid && HoldsCurrentCopies(state, vm, h.Name))
            .Where(h => primaries.Count == 0 || primaries[0] == h.Name)
            .Select(h => h.Name)
            .Order(StringComparer.Ordinal)
            .ToList();
        if (candidates.Count == 0)
        {
            return FerryError.WrongState(primaries.Count == 1
                ? $"VM '{vm.Name}' must run where its disks are primary, on {primaries[0]}, which cannot take it"
                : $"no host holds an up-to-date copy of every disk of VM '{vm.Name}'");
        }

        return candidates;
    }
}
