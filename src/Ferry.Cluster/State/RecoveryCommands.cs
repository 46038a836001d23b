namespace Ferry.Cluster.State;

/// <summary>The VM crashed on its host, which is healthy: it may start it once more there.</summary>
public sealed record RestartVm(string Name, string Host) : ClusterCommand
{
    public override string? HostSubject => Host;

    public override string? VmSubject => Name;

    internal override Result<StateChange> Execute(ClusterState state)
    {
        if (RecoveryChecks.Crashed(state, Name, Host) is not { } vm)
        {
            return RecoveryChecks.NotCrashedThere(state, Name, Host);
        }

        var recovery = vm.Recoveries;
        if (recovery.Restarts >= vm.RestartLimits.MaxRestarts)
        {
            return FerryError.WrongState($"VM '{Name}' was restarted {recovery.Restarts} times on {Host} already (its limit)");
        }

        var next = recovery with { Restarts = recovery.Restarts + 1, Grants = recovery.Grants + 1 };
        return new StateChange(state with { Vms = state.Vms.SetItem(Name, vm with { Recovery = next }) },
            $"VM {Name} crashed on {Host}: restart {next.Restarts} of {vm.RestartLimits.MaxRestarts} there");
    }
}

/// <summary>
/// The VM crashed on its host more often than it may be restarted there: it leaves the host (which it
/// then avoids), and its disks' primaries there are given up, so that it is placed and promoted on another.
/// </summary>
public sealed record RelocateVm(string Name, string Host) : ClusterCommand
{
    public override string? HostSubject => Host;

    public override string? VmSubject => Name;

    internal override Result<StateChange> Execute(ClusterState state)
    {
        if (RecoveryChecks.Crashed(state, Name, Host) is not { } vm)
        {
            return RecoveryChecks.NotCrashedThere(state, Name, Host);
        }

        var recovery = vm.Recoveries;
        if (recovery.Relocations >= vm.RestartLimits.MaxRelocations)
        {
            return FerryError.WrongState($"VM '{Name}' was moved {recovery.Relocations} times already (its limit)");
        }

        var disks = vm.Spec.Disks.Select(d => d.Volume).OfType<string>().ToHashSet(StringComparer.Ordinal);
        var primaries = state.Volumes.Values.Where(v => disks.Contains(v.Name) && v.Primary == Host).Select(v => v.Name).ToList();
        var next = recovery with { Restarts = 0, Relocations = recovery.Relocations + 1, Avoid = Host };
        return new StateChange(
            state with
            {
                Vms = state.Vms.SetItem(Name, vm with { Host = null, Recovery = next }),
                Volumes = state.Volumes.SetItems(primaries.Select(v => KeyValuePair.Create(v, state.Volumes[v] with { Primary = null }))),
            },
            $"VM {Name} crashed on {Host} after {recovery.Restarts} restarts there: moving it, move {next.Relocations} of {vm.RestartLimits.MaxRelocations}");
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

        var forgiven = vm.Host == Host && vm.Recoveries.Error is null ? vm with { Recovery = vm.Recoveries.Forgiven() } : vm;
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

internal static class RecoveryChecks
{
    public static VmRecord? Crashed(ClusterState state, string name, string host) =>
        state.Vm(name) is { Host: { } on, Desired: VmDesiredState.Running } vm && on == host && vm.Recoveries.Error is null ? vm : null;

    public static FerryError NotCrashedThere(ClusterState state, string name, string host) => state.Vm(name) is null
        ? VmChecks.Unknown(name)
        : FerryError.WrongState($"VM '{name}' is not meant to run on {host}, or the cluster gave up on it");
}
