using Ferry.Cluster.State;

namespace Ferry.Cluster.Reconcile;

/// <summary>
/// Where a VM may run: on a member host that holds a copy of each of its volumes, none of them Outdated,
/// and that is already the primary of those that have one (a VM moves with its volumes, not away from
/// them), and that is not fenced nor the host the VM was moved away from after crashing there. Among
/// those, the host running the fewest VMs.
/// </summary>
public static class Placement
{
    public static Result<string> Choose(ClusterState state, VmRecord vm)
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
            .Where(h => h.Role == HostRole.Member && h.Fenced is null && h.Name != vm.Recoveries.Avoid)
            .Where(h => volumes.All(v => v.Hosts.Contains(h.Name) && !v.Outdated.ContainsKey(h.Name)))
            .Where(h => primaries.Count == 0 || primaries[0] == h.Name)
            .Select(h => h.Name)
            .ToList();
        if (candidates.Count == 0)
        {
            return FerryError.WrongState(primaries.Count == 1
                ? $"VM '{vm.Name}' must run where its disks are primary, on {primaries[0]}, which cannot take it"
                : $"no host holds an up-to-date copy of every disk of VM '{vm.Name}'");
        }

        return candidates
            .OrderBy(host => state.Vms.Values.Count(v => v.Host == host && v.Desired == VmDesiredState.Running))
            .ThenBy(host => host, StringComparer.Ordinal)
            .First();
    }

    public static IEnumerable<string> VolumesOf(VmRecord vm) => vm.Spec.Disks.Select(d => d.Volume).OfType<string>();
}
