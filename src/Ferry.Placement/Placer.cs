namespace Ferry.Placement;

/// <summary>
/// Where a VM goes: a host that may run it, where it fits next to the others and no twin runs, and (when
/// asked) that keeps N+1; of those, the first it prefers, else the one with the most free memory.
/// </summary>
public static class Placer
{
    /// <param name="placed">The VMs placed now (the VM itself, if among them, is placed anew).</param>
    /// <param name="keepNPlusOne">Refuse a host on which the VM would break N+1 (when N+1 held before).</param>
    /// <param name="among">Only these hosts may take it now (null: any it may run on); N+1 still counts on all of them.</param>
    /// <param name="twinsApart">Refuse hosts where a twin runs (false: only for a failed host's VMs that find no other room).</param>
    public static Result<string> Choose(
        IReadOnlyList<HostCapacity> hosts, IReadOnlyList<VmDemand> placed, VmDemand vm, bool keepNPlusOne, IReadOnlyCollection<string>? among = null, bool twinsApart = true)
    {
        var others = placed.Where(v => v.Name != vm.Name).ToList();
        var held = !keepNPlusOne || NPlusOne.Check(hosts, others).Count == 0;
        string? why = null;
        foreach (var host in Fit.Ranked(hosts.Where(h => h.Available && (among is null || among.Contains(h.Name))), vm, h => others.Where(v => v.Host == h)))
        {
            if (!Fit.Allows(host, others.Where(v => v.Host == host.Name), vm, twinsApart))
            {
                continue;
            }

            if (keepNPlusOne && held && NPlusOne.Check(hosts, [.. others, vm with { Host = host.Name }]) is [var failure, ..])
            {
                why ??= $"on {host.Name}, {failure}";
                continue;
            }

            return host.Name;
        }

        return FerryError.WrongState(why is null
            ? $"no host can take VM '{vm.Name}' ({vm.MemoryMiB} MiB, {vm.VCpus} vCPUs): none that may run it has the room, or its twins are on all of them"
            : $"VM '{vm.Name}' would break N+1: {why}");
    }
}
