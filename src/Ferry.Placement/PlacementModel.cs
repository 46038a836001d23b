namespace Ferry.Placement;

/// <summary>A host as placement sees it: what it has, what it keeps for itself, and whether it can take VMs now.</summary>
/// <param name="ReservedMiB">Memory the host keeps for itself (Y in Z = (X - Y)(N - 1)/N); never given to VMs.</param>
/// <param name="Available">A member that is up, not fenced, not draining.</param>
/// <param name="Reported">False for a host that has not said yet what it has: it is taken as unbounded, but tried after those that did.</param>
public sealed record HostCapacity(string Name, long MemoryMiB, int VCpus, long ReservedMiB = 0, bool Available = true, bool Reported = true)
{
    /// <summary>vCPUs are shared: a host runs up to this many per physical one; memory is never overcommitted.</summary>
    public const int VCpuOvercommit = 4;

    public long UsableMiB => Math.Max(0, MemoryMiB - ReservedMiB);

    public int UsableVCpus => VCpus * VCpuOvercommit;
}

/// <summary>A VM as placement sees it.</summary>
/// <param name="Host">Where it is placed now (null: nowhere).</param>
/// <param name="AntiAffinity">Its group of twins: two VMs of one group never share a host.</param>
/// <param name="Candidates">The hosts that may run it at all (those holding an up-to-date copy of each of its disks); null: any.</param>
/// <param name="Prefer">Hosts it goes to first, in this order, when it fits there; then any other.</param>
public sealed record VmDemand(string Name, long MemoryMiB, int VCpus, string? Host = null, string? AntiAffinity = null, IReadOnlyList<string>? Candidates = null, IReadOnlyList<string>? Prefer = null)
{
    public bool MayRunOn(string host) => Candidates is null || Candidates.Contains(host, StringComparer.Ordinal);

    /// <summary>Whether another host could run it at all: one with its only disk copies (or the only host) is lost with its host, N+1 or not.</summary>
    public bool CanFailOver => Candidates is null || Candidates.Count > 1;

    /// <summary>Where <paramref name="host"/> stands in the VM's preferences: its index, or after all of them.</summary>
    public int Preference(string host)
    {
        for (var i = 0; i < (Prefer?.Count ?? 0); i++)
        {
            if (Prefer![i] == host)
            {
                return i;
            }
        }

        return int.MaxValue;
    }
}

/// <summary>A host whose failure would leave VMs with nowhere to restart.</summary>
public sealed record NPlusOneFailure(string FailedHost, IReadOnlyList<string> Stranded)
{
    public override string ToString() => $"if {FailedHost} failed, [{string.Join(", ", Stranded)}] could not restart elsewhere";
}
