namespace Ferry.Cluster.State;

/// <summary>The leader's answer to a crash of the VM on its (healthy) host: only while the VM should run there and the cluster has not given up on it.</summary>
public abstract record CrashAnswer(string Name, string Host) : ClusterCommand
{
    public override string? HostSubject => Host;

    public override string? VmSubject => Name;

    internal override Result<StateChange> Execute(ClusterState state) =>
        state.Vm(Name) is not { } vm ? VmChecks.Unknown(Name)
        : vm.Host != Host || vm.Desired != VmDesiredState.Running || vm.Recoveries.Error is not null || vm.Migration is not null
            ? FerryError.WrongState($"VM '{Name}' is not meant to run on {Host}, is migrating, or the cluster gave up on it")
            : Answer(state, vm, vm.Recoveries, vm.RestartLimits);

    private protected abstract Result<StateChange> Answer(ClusterState state, VmRecord vm, VmRecovery recovery, RestartLimits limits);
}

/// <summary>The VM crashed on its host, which is healthy: it may start it once more there.</summary>
public sealed record RestartVm(string Name, string Host) : CrashAnswer(Name, Host)
{
    private protected override Result<StateChange> Answer(ClusterState state, VmRecord vm, VmRecovery recovery, RestartLimits limits)
    {
        if (recovery.Restarts >= limits.MaxRestarts)
        {
            return FerryError.WrongState($"VM '{Name}' was restarted {recovery.Restarts} times on {Host} already (its limit)");
        }

        var next = recovery with { Restarts = recovery.Restarts + 1, Grants = recovery.Grants + 1 };
        return new StateChange(state with { Vms = state.Vms.SetItem(Name, vm with { Recovery = next, HealthyAt = null, StartAskedAt = At }) },
            $"VM {Name} crashed on {Host}: restart {next.Restarts} of {limits.MaxRestarts} there");
    }
}

/// <summary>
/// The VM crashed on its host more often than it may be restarted there: it leaves the host (which it
/// then avoids), and its disks' primaries there are given up, so that it is placed and promoted on another.
/// </summary>
public sealed record RelocateVm(string Name, string Host) : CrashAnswer(Name, Host)
{
    private protected override Result<StateChange> Answer(ClusterState state, VmRecord vm, VmRecovery recovery, RestartLimits limits)
    {
        if (recovery.Relocations >= limits.MaxRelocations)
        {
            return FerryError.WrongState($"VM '{Name}' was moved {recovery.Relocations} times already (its limit)");
        }

        var disks = vm.Spec.Disks.Select(d => d.Volume).OfType<string>().ToHashSet(StringComparer.Ordinal);
        var (next, _) = state.WithoutPrimaries(Host, v => disks.Contains(v.Name));
        var moved = recovery with { Restarts = 0, Relocations = recovery.Relocations + 1, Avoid = Host };
        return new StateChange(next with { Vms = next.Vms.SetItem(Name, vm with { Host = null, Recovery = moved, HealthyAt = null }) },
            $"VM {Name} crashed on {Host} after {recovery.Restarts} restarts there: moving it, move {moved.Relocations} of {limits.MaxRelocations}");
    }
}

/// <summary>
/// The VM answered its health check on its host after a start: the crashes before are forgiven, its
/// restart and move budget whole again. It is also the `vm-healthy` step of a recovery's timeline.
/// </summary>
public sealed record VmHealthy(string Name, string Host, string Message) : ClusterCommand
{
    public override string Kind => "vm-healthy";

    public override string? HostSubject => Host;

    public override string? VmSubject => Name;

    internal override Result<StateChange> Execute(ClusterState state)
    {
        if (state.Vm(Name) is not { } vm)
        {
            return VmChecks.Unknown(Name);
        }

        var forgiven = vm.Host == Host && vm.Recoveries.Error is null ? vm with { Recovery = vm.Recoveries.Forgiven(), HealthyAt = At } : vm;
        return new StateChange(state with { Vms = state.Vms.SetItem(Name, forgiven) }, Message);
    }
}

/// <summary>The VM crashed with its restarts and moves spent: the cluster stops trying, and says why, until it is started again.</summary>
public sealed record GiveUpVm(string Name, string Reason) : ClusterCommand
{
    public override string? VmSubject => Name;

    internal override Result<StateChange> Execute(ClusterState state)
    {
        if (state.Vm(Name) is not { } vm)
        {
            return VmChecks.Unknown(Name);
        }

        return new StateChange(state with { Vms = state.Vms.SetItem(Name, vm with { Recovery = vm.Recoveries with { Error = Reason } }) },
            $"VM {Name} is not restarted again: {Reason} (ferry vm start {Name} tries again)");
    }
}
