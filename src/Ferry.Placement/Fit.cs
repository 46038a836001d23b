namespace Ferry.Placement;

/// <summary>Whether a VM may join the VMs on a host: memory within what the host gives VMs, vCPUs within its overcommit, no twin there.</summary>
public static class Fit
{
    public static bool Allows(HostCapacity host, IEnumerable<VmDemand> onHost, VmDemand vm)
    {
        if (!vm.MayRunOn(host.Name))
        {
            return false;
        }

        long memory = vm.MemoryMiB;
        var vcpus = vm.VCpus;
        foreach (var other in onHost)
        {
            if (vm.AntiAffinity is { } group && other.Name != vm.Name && other.AntiAffinity == group)
            {
                return false;
            }

            memory += other.MemoryMiB;
            vcpus += other.VCpus;
        }

        return memory <= host.UsableMiB && vcpus <= host.UsableVCpus;
    }

    /// <summary>Memory a host still gives VMs, with <paramref name="onHost"/> on it.</summary>
    public static long FreeMiB(HostCapacity host, IEnumerable<VmDemand> onHost) => host.UsableMiB - onHost.Sum(v => v.MemoryMiB);
}
