using Ferry.Hypervisor;
using Ferry.Storage.Replication;
using Ferry.Storage.Replication.Wire;

namespace Ferry.Cluster.Reconcile;

/// <summary>A volume copy on this host as the local manager sees it.</summary>
/// <param name="Managed">The cluster made it (and may change or delete it); other copies are left alone.</param>
/// <param name="AllowTwoPrimaries">Open to a second primary: only during a live migration's handoff.</param>
public sealed record LocalCopy(Guid Id, CopyRole Role, DiskState Disk, ulong Epoch, bool Managed, ReplicationProtocol Protocol, IReadOnlyList<PeerAddress> Peers, bool AllowTwoPrimaries = false);

/// <summary>A VM on this host as the local manager sees it.</summary>
/// <param name="Managed">The cluster defined it (and may stop or forget it); other VMs are left alone.</param>
/// <param name="StartedAtGrant">The VM's count of granted restarts when this host last started it (<see cref="Ferry.Cluster.State.VmRecovery.Grants"/>).</param>
public sealed record LocalVm(VmSpec Spec, VmState State, bool Managed, long StartedAtGrant = 0)
{
    public bool IsUp => State is VmState.Running or VmState.Paused or VmState.Starting or VmState.Stopping;
}

/// <summary>This host's copies and VMs, by name.</summary>
public sealed record LocalView(IReadOnlyDictionary<string, LocalCopy> Copies, IReadOnlyDictionary<string, LocalVm> Vms);

/// <summary>One thing the local manager does to bring this host in line with the cluster state.</summary>
public abstract record LocalStep(string Subject)
{
    /// <param name="Force">Quit at once: the VM must not run here any more (placed elsewhere, or its disks are), so no graceful wait.</param>
    public sealed record StopVm(string Name, bool Force) : LocalStep(Name);

    public sealed record ForgetVm(string Name) : LocalStep(Name);

    public sealed record DefineVm(VmSpec Spec) : LocalStep(Spec.Name);

    public sealed record StartVm(string Name) : LocalStep(Name);

    /// <summary>Lets a paused VM run: one left paused by a live migration whose target this host is now.</summary>
    public sealed record ResumeVm(string Name) : LocalStep(Name);

    public sealed record CreateCopy(string Volume, Guid Id, long SizeBytes, ulong Seed, ReplicationProtocol Protocol, IReadOnlyList<PeerAddress> Peers) : LocalStep(Volume);

    /// <summary>Sets a copy's protocol and peers; it no longer takes a second primary (a migration that left it open ended).</summary>
    public sealed record ConfigureCopy(string Volume, ReplicationProtocol Protocol, IReadOnlyList<PeerAddress> Peers) : LocalStep(Volume);

    public sealed record PromoteCopy(string Volume, ulong Epoch) : LocalStep(Volume);

    public sealed record DemoteCopy(string Volume) : LocalStep(Volume);

    /// <summary>The copy is primary here at a lower epoch than the state grants it (after a migration's handoff): it takes the new one.</summary>
    public sealed record RaiseEpoch(string Volume, ulong Epoch) : LocalStep(Volume);

    public sealed record DeleteCopy(string Volume) : LocalStep(Volume);

    /// <summary>
    /// The state names this copy primary at an epoch it already used, but it is secondary (it fenced
    /// itself): the cluster is told to drop the grant, and a new promotion takes a new epoch.
    /// </summary>
    public sealed record GiveUpPrimary(string Volume) : LocalStep(Volume);

    /// <summary>Nothing can be done for the subject: the reason is reported.</summary>
    public sealed record Blocked(string Name, string Reason) : LocalStep(Name);
}
