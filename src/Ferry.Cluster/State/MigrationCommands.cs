using Ferry.Cluster.Reconcile;
using Ferry.Hypervisor;
using Ferry.Placement;
using Ferry.Storage.Replication;
using Ferry.Storage.Replication.Wire;
using Ferry.Storage.Volumes;

namespace Ferry.Cluster.State;

/// <summary>A live migration under way: from its source host, where the VM runs, to its target.</summary>
/// <param name="ForDrain">Started because the source was drained: the VM remembers the source as its home.</param>
/// <param name="Limits">How it may go (null: the defaults).</param>
public sealed record VmMigration(Guid Id, string Source, string Target, DateTimeOffset Since, bool ForDrain = false, MigrationLimits? Limits = null)
{
    public MigrationLimits Settings => Limits ?? MigrationLimits.Default;
}

/// <summary>The pause a migration may cause at its switch-over, the bandwidth it may use, and how long it may take before it is cancelled.</summary>
public sealed record MigrationLimits(TimeSpan MaxDowntime, long BandwidthBytesPerSecond, TimeSpan Timeout)
{
    public static MigrationLimits Default { get; } = new(TimeSpan.FromMilliseconds(100), 1L << 30, TimeSpan.FromMinutes(5));

    public FerryError? Invalid() =>
        MaxDowntime < TimeSpan.FromMilliseconds(1) || MaxDowntime > TimeSpan.FromSeconds(60) ? FerryError.InvalidArgument($"a migration's downtime limit is 1 ms to 60 s, not {MaxDowntime.TotalMilliseconds} ms")
        : BandwidthBytesPerSecond < 1 << 20 ? FerryError.InvalidArgument($"a migration's bandwidth is at least 1 MiB/s, not {BandwidthBytesPerSecond} bytes/s")
        : Timeout < TimeSpan.FromSeconds(1) || Timeout > TimeSpan.FromHours(24) ? FerryError.InvalidArgument($"a migration's timeout is 1 s to 24 h, not {Timeout.TotalSeconds} s")
        : null;
}

/// <summary>How a live migration ended. <paramref name="Downtime"/> is QEMU's own measure of the pause at the switch-over.</summary>
/// <param name="ResumedAfter">From the source's switch-over to the target's answer that it runs: the pause the guest saw, at most.</param>
public sealed record MigrationResult(
    Guid Id, string Source, string Target, bool Succeeded, DateTimeOffset At, TimeSpan Duration, TimeSpan? Downtime = null, TimeSpan? ResumedAfter = null, string? Error = null);

/// <summary>
/// Starts a live migration of a running VM to <paramref name="Target"/>: a member that takes VMs, has the
/// room, holds an UpToDate copy connected to the primary of each of the VM's disks (each a two-copy
/// volume with protocol C, the only kind that may have two primaries for the handoff). From now on the
/// VM's source host runs the migration and both hosts leave the VM and its disks to it.
/// </summary>
public sealed record BeginMigration(string Name, string Target, Guid MigrationId, bool ForDrain = false, MigrationLimits? Limits = null) : ClusterCommand
{
    public override string? HostSubject => Target;

    public override string? VmSubject => Name;

    internal override Result<StateChange> Execute(ClusterState state)
    {
        if (state.Vm(Name) is not { } vm)
        {
            return VmChecks.Unknown(Name);
        }

        if ((Limits?.Invalid() ?? Refusal(state, vm)) is { } refused)
        {
            return refused;
        }

        var migration = new VmMigration(MigrationId, vm.Host!, Target, At, ForDrain, Limits);
        return new StateChange(state with { Vms = state.Vms.SetItem(Name, vm with { Migration = migration }) },
            $"VM {Name} migrating live from {vm.Host} to {Target}{(ForDrain ? $" ({vm.Host} is drained)" : "")}");
    }

    /// <summary>A disk of the VM whose copy on <paramref name="target"/> its host does not report UpToDate and connected, or null.</summary>
    public static string? CopyBehind(ClusterState state, VmRecord vm, string target) =>
        Reconcile.Placement.VolumesOf(vm).FirstOrDefault(v => state.Report(target).Copies.GetValueOrDefault(v) is not { Disk: DiskState.UpToDate, Connection: ConnectionState.Connected });

    private FerryError? Refusal(ClusterState state, VmRecord vm)
    {
        if (vm.Migration is { } running)
        {
            return FerryError.Conflict($"VM '{Name}' is migrating already, from {running.Source} to {running.Target}");
        }

        if (vm.Desired != VmDesiredState.Running || vm.Host is not { } source || state.Report(source).Vms.GetValueOrDefault(Name)?.State != VmState.Running)
        {
            return FerryError.WrongState($"VM '{Name}' is not running: only a running VM migrates live (start it where you want it instead)");
        }

        if (Target == source)
        {
            return FerryError.InvalidArgument($"VM '{Name}' runs on {source} already");
        }

        if (state.Host(Target) is not { } target)
        {
            return FerryError.NotFound($"no host named '{Target}' in the cluster");
        }

        if (!target.TakesVms)
        {
            return FerryError.WrongState($"host '{Target}' takes no VMs now ({(target.Role == HostRole.Witness ? "a witness" : target.Fenced is not null ? "fenced" : "in maintenance")})");
        }

        foreach (var name in Reconcile.Placement.VolumesOf(vm))
        {
            var volume = state.Volume(name)!;
            if (!volume.Hosts.Contains(Target))
            {
                return FerryError.WrongState($"host '{Target}' holds no copy of '{name}', a disk of VM '{Name}' (copies on {string.Join(", ", volume.Hosts)})");
            }

            if (volume.Protocol != ReplicationProtocol.C)
            {
                return FerryError.WrongState(
                    $"'{name}' replicates with protocol {volume.Protocol}: a live migration hands a disk over between two primaries, which needs protocol C (ferry volume set-protocol)");
            }

            if (volume.Primary != source)
            {
                return FerryError.WrongState($"'{name}' is not primary on {source}, where VM '{Name}' runs");
            }

        }

        if (CopyBehind(state, vm, Target) is { } behind)
        {
            return FerryError.WrongState($"the copy of '{behind}' on {Target} is not UpToDate and connected yet: wait for its resync (ferry volume show {behind})");
        }

        var fits = Placer.Choose(Reconcile.Placement.Hosts(state), Reconcile.Placement.Placed(state), Reconcile.Placement.Demand(state, vm), keepNPlusOne: false, [Target]);
        return fits.IsOk ? null : FerryError.WrongState($"host '{Target}' cannot take VM '{Name}': {fits.Error!.Message}");
    }
}

/// <summary>
/// The source saw QEMU complete the migration: the VM is the target's now, and so are its disks'
/// primaries, each at a new epoch (the copies shared one for the handoff; the target's copy takes the
/// new one and the source's is demoted next). A VM drained away remembers its home; one back home
/// forgets it.
/// </summary>
public sealed record CompleteMigration(string Name, Guid MigrationId, TimeSpan? Downtime, TimeSpan? ResumedAfter, string? Note = null) : ClusterCommand
{
    public override string? VmSubject => Name;

    internal override Result<StateChange> Execute(ClusterState state)
    {
        if (state.Vm(Name) is not { } vm)
        {
            return VmChecks.Unknown(Name);
        }

        if (vm.Migration is not { } m || m.Id != MigrationId)
        {
            return FerryError.Conflict($"VM '{Name}' has no migration {MigrationId} under way");
        }

        var disks = Reconcile.Placement.VolumesOf(vm).ToHashSet(StringComparer.Ordinal);
        var volumes = state.Volumes.SetItems(state.Volumes.Values.Where(v => disks.Contains(v.Name)).Select(v => KeyValuePair.Create(v.Name, v with { Primary = m.Target, Epoch = v.Epoch + 1 })));
        var home = m.ForDrain ? vm.Home ?? m.Source : m.Target == vm.Home ? null : vm.Home;
        var result = new MigrationResult(m.Id, m.Source, m.Target, true, At, At - m.Since, Downtime, ResumedAfter, Note);
        return new StateChange(
            state with { Volumes = volumes, Vms = state.Vms.SetItem(Name, vm with { Host = m.Target, Migration = null, LastMigration = result, Home = home }) },
            $"VM {Name} migrated from {m.Source} to {m.Target} in {result.Duration.TotalSeconds:0.0} s, downtime {Downtime?.TotalMilliseconds:0} ms" + (Note is null ? "" : $" ({Note})"));
    }
}

/// <summary>The migration failed before the switch-over: the VM runs on at its source; the target lets go of it.</summary>
public sealed record AbortMigration(string Name, Guid MigrationId, string Reason) : ClusterCommand
{
    public override string? VmSubject => Name;

    internal override Result<StateChange> Execute(ClusterState state)
    {
        if (state.Vm(Name) is not { } vm)
        {
            return VmChecks.Unknown(Name);
        }

        if (vm.Migration is not { } m || m.Id != MigrationId)
        {
            return FerryError.Conflict($"VM '{Name}' has no migration {MigrationId} under way");
        }

        return new StateChange(state with { Vms = state.Vms.SetItem(Name, vm.WithoutMigration(At, Reason)) }, $"migration of VM {Name} from {m.Source} to {m.Target} failed: {Reason}");
    }
}
