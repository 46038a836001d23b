namespace Ferry.Agent.Vms;

/// <summary>
/// The durable list of VMs. A file-backed store on a single host; the cluster state replaces it later,
/// so callers rely only on this interface.
/// </summary>
public interface IVmRegistry
{
    IReadOnlyList<VmRecord> List();

    VmRecord? Find(string name);

    /// <summary>Adds a new VM; a Conflict error when the name is taken.</summary>
    Task<FerryError?> AddAsync(VmRecord record, CancellationToken ct);

    Task UpdateAsync(VmRecord record, CancellationToken ct);

    Task RemoveAsync(string name, CancellationToken ct);
}
