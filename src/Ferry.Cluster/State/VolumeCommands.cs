using System.Collections.Immutable;
using Ferry.Storage.Replication;
using Ferry.Storage.Replication.Wire;

namespace Ferry.Cluster.State;

/// <summary>Declares a volume with a copy on each of 1 to 3 hosts; none is primary yet.</summary>
/// <param name="Seed">The generation every copy starts with: all are created empty, hence identical, and need no first sync.</param>
public sealed record CreateVolume(string Name, Guid VolumeId, long SizeBytes, ImmutableList<string> Hosts, ulong Seed, ReplicationProtocol Protocol = ReplicationProtocol.C) : ClusterCommand
{
    public const int MaxCopies = 3;

    public override string? VolumeSubject => Name;

    internal override Result<StateChange> Execute(ClusterState state)
    {
        if (!ResourceName.IsValid(Name))
        {
            return FerryError.InvalidArgument($"invalid volume name '{Name}': {ResourceName.Rule}");
        }

        if (state.Volumes.ContainsKey(Name))
        {
            return FerryError.Conflict($"a volume named '{Name}' already exists");
        }

        if (SizeBytes <= 0 || SizeBytes % 4096 != 0)
        {
            return FerryError.InvalidArgument($"invalid size {SizeBytes}: give a positive multiple of 4096 bytes");
        }

        if (Seed == 0)
        {
            return FerryError.InvalidArgument("a volume's seed generation must not be 0");
        }

        if (Hosts.Count is 0 or > MaxCopies || Hosts.Distinct(StringComparer.Ordinal).Count() != Hosts.Count)
        {
            return FerryError.InvalidArgument($"a volume has copies on 1 to {MaxCopies} different hosts, not [{string.Join(", ", Hosts)}]");
        }

        foreach (var host in Hosts)
        {
            if (state.Host(host) is not { } record)
            {
                return FerryError.NotFound($"no host named '{host}' in the cluster");
            }

            if (record.Role == HostRole.Witness)
            {
                return FerryError.InvalidArgument($"host '{host}' is a witness and holds no volume copies");
            }
        }

        var volume = new VolumeRecord(Name, VolumeId, SizeBytes, Hosts, Protocol, null, 0, ImmutableDictionary<string, OutdatedMark>.Empty, Seed);
        return new StateChange(state with { Volumes = state.Volumes.Add(Name, volume) },
            $"volume {Name} created with copies on [{string.Join(", ", Hosts)}], protocol {Protocol}");
    }
}

/// <summary>Forgets a volume; refused while a VM uses it as a disk.</summary>
public sealed record DeleteVolume(string Name) : ClusterCommand
{
    public override string? VolumeSubject => Name;

    internal override Result<StateChange> Execute(ClusterState state)
    {
        if (!state.Volumes.ContainsKey(Name))
        {
            return VolumeChecks.Unknown(Name);
        }

        if (state.Vms.Values.FirstOrDefault(vm => vm.Spec.Disks.Any(d => d.Volume == Name)) is { } user)
        {
            return FerryError.WrongState($"volume '{Name}' is a disk of VM '{user.Name}': delete the VM first");
        }

        return new StateChange(state with { Volumes = state.Volumes.Remove(Name) }, $"volume {Name} deleted");
    }
}

/// <summary>
/// Grants the copy on <paramref name="Host"/> the next epoch and makes it the primary (DESIGN invariant 2).
/// An Outdated copy is refused unless <paramref name="Force"/>, and forcing says what may be lost.
/// </summary>
public sealed record PromoteCopy(string Volume, string Host, bool Force = false) : ClusterCommand
{
    public override string? HostSubject => Host;

    public override string? VolumeSubject => Volume;

    internal override Result<StateChange> Execute(ClusterState state)
    {
        if (VolumeChecks.Copy(state, Volume, Host) is not { } volume)
        {
            return VolumeChecks.MissingCopy(state, Volume, Host);
        }

        if (state.Host(Host) is { Fenced: not null } fenced)
        {
            return HostChecks.IsFenced(fenced);
        }

        if (VolumeChecks.Migrating(state, Volume) is { } migrating)
        {
            return migrating;
        }

        var atRisk = "";
        if (volume.Outdated.TryGetValue(Host, out var mark))
        {
            if (!Force)
            {
                return FerryError.WrongState(
                    $"the copy of '{Volume}' on {Host} is Outdated (marked by {mark.ByHost} at epoch {mark.Epoch}, {mark.At:u}): " +
                    "promote another copy, or force it and lose what was written after that");
            }

            atRisk = $"; forced: writes acknowledged by {mark.ByHost} after epoch {mark.Epoch} ({mark.At:u}) are not on this copy";
        }

        var epoch = volume.Epoch + 1;
        var promoted = volume with { Primary = Host, Epoch = epoch, Outdated = volume.Outdated.Remove(Host) };
        return new StateChange(state with { Volumes = state.Volumes.SetItem(Volume, promoted) },
            $"copy of {Volume} on {Host} promoted at epoch {epoch}{atRisk}", epoch);
    }
}

/// <summary>The copy on <paramref name="Host"/> is no longer primary. Repeating it changes nothing.</summary>
public sealed record DemoteCopy(string Volume, string Host) : ClusterCommand
{
    public override string? HostSubject => Host;

    public override string? VolumeSubject => Volume;

    internal override Result<StateChange> Execute(ClusterState state)
    {
        if (VolumeChecks.Copy(state, Volume, Host) is not { } volume)
        {
            return VolumeChecks.MissingCopy(state, Volume, Host);
        }

        if (volume.Primary == Host && VolumeChecks.Migrating(state, Volume) is { } migrating)
        {
            return migrating;
        }

        return volume.Primary != Host
            ? new StateChange(state, $"copy of {Volume} on {Host} was not primary")
            : new StateChange(state with { Volumes = state.Volumes.SetItem(Volume, volume with { Primary = null }) }, $"copy of {Volume} on {Host} demoted");
    }
}

/// <summary>
/// A primary at <paramref name="Epoch"/> goes on without the copy on <paramref name="PeerHost"/>
/// (DESIGN invariant 3). Refused when the primary is stale, or when its own copy was outdated first. The
/// primary the volume's epoch was granted to may ask at an older one: it began asking before it took the
/// new epoch (a migration's target, granted one at the switch-over while it was outdating a third copy).
/// </summary>
public sealed record OutdateCopy(string Volume, string PeerHost, string ByHost, ulong Epoch) : ClusterCommand
{
    public override string? HostSubject => PeerHost;

    public override string? VolumeSubject => Volume;

    internal override Result<StateChange> Execute(ClusterState state)
    {
        if (VolumeChecks.Copy(state, Volume, PeerHost) is not { } volume)
        {
            return VolumeChecks.MissingCopy(state, Volume, PeerHost);
        }

        if (Epoch < volume.Epoch && ByHost != volume.Primary)
        {
            return FerryError.WrongState($"{ByHost} is primary at epoch {Epoch}, but epoch {volume.Epoch} was granted to {volume.Primary}: it is stale");
        }

        // Two primaries that lost each other both ask: the first is granted, the other is stale from then on.
        if (volume.Outdated.TryGetValue(ByHost, out var own))
        {
            return FerryError.WrongState($"{ByHost}'s own copy was marked Outdated by {own.ByHost} at epoch {own.Epoch} ({own.At:u}), which went on without it first");
        }

        var mark = new OutdatedMark(PeerHost, ByHost, Epoch, At);
        return new StateChange(state with { Volumes = state.Volumes.SetItem(Volume, volume with { Outdated = volume.Outdated.SetItem(PeerHost, mark) }) },
            $"copy of {Volume} on {PeerHost} marked Outdated by {ByHost} at epoch {Epoch}");
    }
}

/// <summary>The copy on <paramref name="Host"/> is in step again (a resync finished). Repeating it changes nothing.</summary>
public sealed record ClearOutdated(string Volume, string Host) : ClusterCommand
{
    public override string? HostSubject => Host;

    public override string? VolumeSubject => Volume;

    internal override Result<StateChange> Execute(ClusterState state)
    {
        if (VolumeChecks.Copy(state, Volume, Host) is not { } volume)
        {
            return VolumeChecks.MissingCopy(state, Volume, Host);
        }

        return new StateChange(state with { Volumes = state.Volumes.SetItem(Volume, volume with { Outdated = volume.Outdated.Remove(Host) }) },
            $"copy of {Volume} on {Host} is up to date again");
    }
}

internal static class VolumeChecks
{
    public static FerryError Unknown(string name) => FerryError.NotFound($"no volume named '{name}'");

    /// <summary>A disk of a VM being migrated changes primary only through the migration.</summary>
    public static FerryError? Migrating(ClusterState state, string volume) =>
        state.Vms.Values.FirstOrDefault(vm => vm.Migration is not null && vm.Spec.Disks.Any(d => d.Volume == volume)) is { Migration: { } m } vm
            ? FerryError.WrongState($"'{volume}' is a disk of VM '{vm.Name}', which is migrating from {m.Source} to {m.Target}: wait until it is done")
            : null;

    public static VolumeRecord? Copy(ClusterState state, string name, string host) =>
        state.Volume(name) is { } volume && volume.Hosts.Contains(host) ? volume : null;

    public static FerryError MissingCopy(ClusterState state, string name, string host) =>
        state.Volume(name) is null ? Unknown(name) : FerryError.NotFound($"volume '{name}' has no copy on host '{host}'");
}
