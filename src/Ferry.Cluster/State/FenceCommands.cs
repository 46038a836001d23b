namespace Ferry.Cluster.State;

/// <summary>
/// Records that a failed host is fenced (its lease ran out on the leader's clock past its self-fence
/// deadline, or a fence agent switched it off): its VMs lose their placement and its copies their
/// primary role, so that the resource manager recovers them on the other hosts (DESIGN invariant 4).
/// Epochs stay: the next promotion of each volume takes a higher one, which the fenced host's copy
/// cannot match.
/// </summary>
public sealed record FenceHost(string Name, string Reason) : ClusterCommand
{
    public override string? HostSubject => Name;

    internal override Result<StateChange> Execute(ClusterState state)
    {
        if (state.Host(Name) is not { } host)
        {
            return FerryError.NotFound($"no host named '{Name}' in the cluster");
        }

        if (host.Role != HostRole.Member)
        {
            return FerryError.InvalidArgument($"host '{Name}' is a witness: it holds nothing to fence");
        }

        if (host.Fenced is { } fenced)
        {
            return FerryError.Conflict($"host '{Name}' is already fenced since {fenced.At:u} ({fenced.Reason})");
        }

        var vms = state.Vms.Values.Where(v => v.Host == Name).Select(v => v.Name).Order(StringComparer.Ordinal).ToList();
        var migrating = state.Vms.Values.Where(v => v.Migration is { } m && (m.Source == Name || m.Target == Name)).Select(v => v.Name).ToList();
        var (next, primaries) = state.WithoutPrimaries(Name, _ => true);
        next = next with
        {
            Hosts = next.Hosts.SetItem(Name, host with { Fenced = new HostFence(At, Reason) }),
            Vms = next.Vms
                .SetItems(migrating.Select(vm => KeyValuePair.Create(vm, next.Vms[vm].WithoutMigration(At, $"{Name} failed during the migration"))))
                .SetItems(vms.Select(vm => KeyValuePair.Create(vm, next.Vms[vm].WithoutMigration(At, $"{Name} failed during the migration") with { Host = null }))),
        };
        return new StateChange(next, $"host {Name} fenced ({Reason}); VMs to recover: [{string.Join(", ", vms)}]; primaries given up: [{string.Join(", ", primaries)}]");
    }
}

/// <summary>
/// Lets a fenced host take part again. Proposed by the leader only when the host, renewing its lease,
/// showed it has applied its own fence (<paramref name="Seen"/> is that fence's time): from then on it
/// acts on a state in which its VMs and primaries were already taken away.
/// </summary>
public sealed record UnfenceHost(string Name, DateTimeOffset Seen) : ClusterCommand
{
    public override string? HostSubject => Name;

    internal override Result<StateChange> Execute(ClusterState state)
    {
        if (state.Host(Name) is not { } host)
        {
            return FerryError.NotFound($"no host named '{Name}' in the cluster");
        }

        if (host.Fenced is not { } fenced)
        {
            return FerryError.WrongState($"host '{Name}' is not fenced");
        }

        if (fenced.At != Seen)
        {
            return FerryError.WrongState($"host '{Name}' has not seen its fence of {fenced.At:u} yet");
        }

        return new StateChange(state with { Hosts = state.Hosts.SetItem(Name, host with { Fenced = null }) },
            $"host {Name} is back after its fence of {fenced.At:u}");
    }
}
