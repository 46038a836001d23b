using Ferry.Cluster.State;

namespace Ferry.Cluster.Reconcile;

/// <summary>
/// What the leader's resource manager proposes next, as a function of the state alone: a place for each
/// VM that should run and has none, and a primary for each of its volumes that has none. It never moves
/// a placed VM or takes a volume from its primary (that is migration and recovery, which fence first).
/// </summary>
public static class ResourcePlan
{
    public static IReadOnlyList<ClusterCommand> Next(ClusterState state)
    {
        var commands = new List<ClusterCommand>();
        foreach (var vm in state.Vms.Values.Where(v => v.Desired == VmDesiredState.Running).OrderBy(v => v.Name, StringComparer.Ordinal))
        {
            if (vm.Host is not { } host)
            {
                if (Placement.Choose(state, vm).TryGetValue(out var chosen, out _))
                {
                    commands.Add(new PlaceVm(vm.Name, chosen));
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

        return commands;
    }

    /// <summary>Why a VM that should run is not running where it is placed yet, or null when nothing holds it back.</summary>
    public static string? Waiting(ClusterState state, VmRecord vm)
    {
        if (vm.Desired != VmDesiredState.Running)
        {
            return null;
        }

        if (vm.Host is not { } host)
        {
            return Placement.Choose(state, vm).TryGetValue(out _, out var error) ? "being placed" : error.Message;
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
