namespace Ferry.Placement;

/// <summary>
/// N+1 admission (Ganeti's check, for any sizes): for every single host failure, every VM placed on
/// that host must restart on the survivors, within their capacity, on a host that may run it, away from
/// its twins. The restart is simulated as the recovery would place: largest VM first, each onto the
/// fitting survivor it prefers, else the one with the most free memory. With identical hosts and VMs this holds exactly while
/// each host uses at most Z = (X - Y)(N - 1)/N. A VM with no room away from its twins restarts next to
/// one, as recovery does: running beats apart. As in Ganeti, a VM no other host could run (its disks
/// have one copy) is not counted as stranded: no spare capacity saves it; it only takes room.
/// </summary>
public static class NPlusOne
{
    /// <summary>The hosts whose failure would strand VMs, and which; empty when the cluster can absorb the loss of any one host.</summary>
    public static IReadOnlyList<NPlusOneFailure> Check(IReadOnlyList<HostCapacity> hosts, IReadOnlyList<VmDemand> vms)
    {
        var failures = new List<NPlusOneFailure>();
        foreach (var failed in hosts.Where(h => h.Available).OrderBy(h => h.Name, StringComparer.Ordinal))
        {
            var stranded = Restart(hosts.Where(h => h.Available && h.Name != failed.Name).ToList(), vms, failed.Name);
            if (stranded.Count > 0)
            {
                failures.Add(new NPlusOneFailure(failed.Name, stranded));
            }
        }

        return failures;
    }

    /// <summary>Places the VMs of <paramref name="failed"/> on <paramref name="survivors"/>; returns those that found no room.</summary>
    private static List<string> Restart(List<HostCapacity> survivors, IReadOnlyList<VmDemand> vms, string failed)
    {
        var load = survivors.ToDictionary(h => h.Name, h => vms.Where(v => v.Host == h.Name).ToList(), StringComparer.Ordinal);
        var stranded = new List<string>();
        foreach (var vm in vms.Where(v => v.Host == failed && v.CanFailOver).OrderByDescending(v => v.MemoryMiB).ThenBy(v => v.Name, StringComparer.Ordinal))
        {
            var ranked = Fit.Ranked(survivors, vm, h => load[h]).ToList();
            var target = ranked.FirstOrDefault(h => Fit.Allows(h, load[h.Name], vm)) ?? ranked.FirstOrDefault(h => Fit.Allows(h, load[h.Name], vm, twinsApart: false));
            if (target is null)
            {
                stranded.Add(vm.Name);
            }
            else
            {
                load[target.Name].Add(vm with { Host = target.Name });
            }
        }

        return stranded;
    }
}
