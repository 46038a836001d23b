using Ferry.Hypervisor;

namespace Ferry.Cluster.State;

/// <summary>Declares a VM, stopped and unplaced. Its volume disks must exist.</summary>
public sealed record DefineVm(VmSpec Spec, RestartLimits? Limits = null, VmRules? Rules = null) : ClusterCommand
{
    public override string? VmSubject => Spec.Name;

    internal override Result<StateChange> Execute(ClusterState state)
    {
        if (!ResourceName.IsValid(Spec.Name))
        {
            return FerryError.InvalidArgument($"invalid VM name '{Spec.Name}': {ResourceName.Rule}");
        }

        if (state.Vms.ContainsKey(Spec.Name))
        {
            return FerryError.Conflict($"a VM named '{Spec.Name}' already exists");
        }

        if (Spec.Disks.FirstOrDefault(d => d.Volume is { } v && !state.Volumes.ContainsKey(v)) is { } missing)
        {
            return FerryError.NotFound($"VM '{Spec.Name}' uses volume '{missing.Volume}', which does not exist");
        }

        // A volume is one VM's disk: two VMs writing one block device would corrupt it.
        foreach (var volume in Spec.Disks.Select(d => d.Volume).OfType<string>())
        {
            if (state.Vms.Values.FirstOrDefault(vm => vm.Spec.Disks.Any(d => d.Volume == volume)) is { } user)
            {
                return FerryError.Conflict($"volume '{volume}' is already a disk of VM '{user.Name}'");
            }
        }

        if ((Limits?.Invalid() ?? Rules?.Invalid()) is { } invalid)
        {
            return invalid;
        }

        // Only VMs that exist already: so dependencies never go round in a circle.
        if (Rules?.Dependencies.FirstOrDefault(d => !state.Vms.ContainsKey(d)) is { } unknown)
        {
            return FerryError.NotFound($"VM '{Spec.Name}' depends on VM '{unknown}', which does not exist (define it first)");
        }

        return new StateChange(state with { Vms = state.Vms.Add(Spec.Name, new VmRecord(Spec, VmDesiredState.Stopped, null, At, Limits, Rules: Rules)) }, $"VM {Spec.Name} defined");
    }
}

/// <summary>
/// Whether the VM should run. Repeating it changes nothing. A start is admitted only where the VM fits
/// next to the others, away from its twins, and the cluster can still absorb the loss of any one host
/// (N+1); a VM whose disks hold it back is admitted and waits, saying why.
/// </summary>
public sealed record SetVmDesiredState(string Name, VmDesiredState Desired) : ClusterCommand
{
    public override string? VmSubject => Name;

    internal override Result<StateChange> Execute(ClusterState state)
    {
        if (state.Vm(Name) is not { } vm)
        {
            return VmChecks.Unknown(Name);
        }

        var starting = Desired == VmDesiredState.Running && vm.Desired != VmDesiredState.Running;
        if (starting && vm.Migration is null && vm.Host is { } left && state.Host(left) is { TakesVms: false })
        {
            // A stopped VM left on a host that takes no VMs now (drained): it starts elsewhere, with its disks.
            var disks = Reconcile.Placement.VolumesOf(vm).ToHashSet(StringComparer.Ordinal);
            (state, _) = state.WithoutPrimaries(left, v => disks.Contains(v.Name));
            vm = vm with { Host = null };
        }

        if (starting && Reconcile.Placement.Refusal(state, vm) is { } refused)
        {
            return refused;
        }

        // Asked to start (again), the VM gets its full restart and relocation budget back.
        var asked = vm with { Desired = Desired, Recovery = vm.Recoveries.Forgiven() };
        if (Desired != vm.Desired)
        {
            asked = asked with { HealthyAt = null, StartAskedAt = Desired == VmDesiredState.Running ? At : vm.StartAskedAt };
        }

        return new StateChange(state with { Vms = state.Vms.SetItem(Name, asked) }, $"VM {Name} should be {FerryJson.Name(Desired)}");
    }
}

/// <summary>Places the VM on one host (or none). A VM runs only on the host it is placed on.</summary>
public sealed record PlaceVm(string Name, string? Host) : ClusterCommand
{
    public override string? HostSubject => Host;

    public override string? VmSubject => Name;

    internal override Result<StateChange> Execute(ClusterState state)
    {
        if (state.Vm(Name) is not { } vm)
        {
            return VmChecks.Unknown(Name);
        }

        if (vm.Migration is { } m)
        {
            return FerryError.WrongState($"VM '{Name}' is migrating from {m.Source} to {m.Target}: wait until it is done");
        }

        if (Host is not null)
        {
            if (state.Host(Host) is not { } host)
            {
                return FerryError.NotFound($"no host named '{Host}' in the cluster");
            }

            if (host.Role == HostRole.Witness)
            {
                return FerryError.InvalidArgument($"host '{Host}' is a witness and runs no VMs");
            }

            if (host.Fenced is not null)
            {
                return HostChecks.IsFenced(host);
            }
        }

        return new StateChange(state with { Vms = state.Vms.SetItem(Name, vm with { Host = Host, HealthyAt = null, StartAskedAt = Host is null ? vm.StartAskedAt : At }) },
            Host is null ? $"VM {Name} unplaced" : $"VM {Name} placed on {Host}");
    }
}

/// <summary>Forgets a VM; refused unless it is meant to be stopped.</summary>
public sealed record DeleteVm(string Name) : ClusterCommand
{
    public override string? VmSubject => Name;

    internal override Result<StateChange> Execute(ClusterState state)
    {
        if (state.Vm(Name) is not { } vm)
        {
            return VmChecks.Unknown(Name);
        }

        if (vm.Desired != VmDesiredState.Stopped)
        {
            return FerryError.WrongState($"VM '{Name}' should be running: stop it first");
        }

        if (state.Vms.Values.FirstOrDefault(v => v.PlacementRules.Dependencies.Contains(Name)) is { } dependent)
        {
            return FerryError.WrongState($"VM '{dependent.Name}' depends on VM '{Name}': delete it first");
        }

        return new StateChange(state with { Vms = state.Vms.Remove(Name) }, $"VM {Name} deleted");
    }
}

internal static class VmChecks
{
    public static FerryError Unknown(string name) => FerryError.NotFound($"no VM named '{name}'");
}
