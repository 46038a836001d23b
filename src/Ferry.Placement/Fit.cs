namespace Ferry.Placement;

/// <summary>Whether a VM may join the VMs on a host: memory within what the host gives VMs, vCPUs within its overcommit, no twin there.</summary>
public static class Fit
{
    /// <param name="twinsApart">Refuse a host where a twin runs (false only for a failed host's VMs that find no other room).</param>
    public static bool Allows(HostCapacity host, IEnumerable<VmDemand> onHost, VmDemand vm, bool twinsApart = true)
    {
        if (!vm.MayRunOn(host.Name))
        {
            return false;
        }

        long memory = vm.MemoryMiB;
        var vcpus = vm.VCpus;
        foreach (var other in onHost)
        {
            if (twinsApart && vm.AntiAffinity is { } group && other.Name != vm.Name && other.AntiAffinity == group)
            {
                return false;
            }

            memory += other.MemoryMiB;
            vcpus += other.VCpus;
        }

        return memory <= host.UsableMiB && vcpus <= host.UsableVCpus;
    }

    /// <summary>The hosts in the order a VM tries them: its preferred ones first, then those that reported, the one with the most free memory first.</summary>
    public static IEnumerable<HostCapacity> Ranked(IEnumerable<HostCapacity> hosts, VmDemand vm, Func<string, IEnumerable<VmDemand>> onHost) =>
        hosts.OrderBy(h => vm.Preference(h.Name)).ThenByDescending(h => h.Reported).ThenByDescending(h => FreeMiB(h, onHost(h.Name))).ThenBy(h => h.Name, StringComparer.Ordinal);

    /// <summary>Memory a host still gives VMs, with <paramref name="onHost"/> on it.</summary>
    public static long FreeMiB(HostCapacity host, IEnumerable<VmDemand> onHost) => host.UsableMiB - onHost.Sum(v => v.MemoryMiB);
}
