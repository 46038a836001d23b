using System.Collections.Immutable;
using System.Text.Json;
using CsCheck;
using Ferry.Cluster.State;
using Ferry.Hypervisor;
using Ferry.Storage.Replication.Wire;
using Ferry.Storage.Volumes;
using static Ferry.Tests.Cluster.ClusterFixtures;

namespace Ferry.Tests.Cluster;

/// <summary>Random command sequences over a few names; the invariants hold after every command.</summary>
public class ClusterStatePropertyTests
{
    private static readonly string[] HostNames = ["a", "b", "c", "d", "w"];
    private static readonly string[] VolumeNames = ["v1", "v2"];
    private static readonly string[] VmNames = ["m1", "m2"];
    private static readonly string[] Tokens = ["t1", "t2", "t3"];

    private static readonly Gen<string> AnyHost = Gen.OneOf(HostNames);
    private static readonly Gen<string> AnyVolume = Gen.OneOf(VolumeNames);
    private static readonly Gen<string> AnyVm = Gen.OneOf(VmNames);
    private static readonly Gen<string> AnyToken = Gen.OneOf(Tokens);
    private static readonly Gen<Guid> AnyMigration = Gen.OneOf(Guid.Parse("00000000-0000-0000-0000-000000000001"), Guid.Parse("00000000-0000-0000-0000-000000000002"));

    private static readonly Gen<HostReport> AnyReport = Gen.Select(
        Gen.Select(AnyVolume, Gen.Enum<CopyRole>(), (v, role) => KeyValuePair.Create(v, new CopyReport(DiskState.UpToDate, role, ConnectionState.Connected, 1))).Array[0, 2],
        Gen.Select(AnyVm, Gen.Enum<VmState>(), (m, state) => KeyValuePair.Create(m, new VmReport(state))).Array[0, 2],
        (copies, vms) => new HostReport(T0, copies.DistinctBy(c => c.Key).ToImmutableDictionary(), vms.DistinctBy(v => v.Key).ToImmutableDictionary()));

    private static readonly Gen<ClusterCommand> Command = Gen.OneOf<ClusterCommand>(
        Gen.Select(AnyToken, Gen.Int[-5, 30], (t, minutes) => (ClusterCommand)new IssueJoinToken(t, "secret-" + t, T0.AddMinutes(minutes))),
        Gen.Select(AnyToken, Gen.Bool, AnyHost, (t, right, h) => (ClusterCommand)new JoinHost(t, right ? "secret-" + t : "wrong", Host(h, h == "w" ? HostRole.Witness : HostRole.Member))),
        Gen.Select(AnyHost, Gen.Bool, (h, force) => (ClusterCommand)new RemoveHost(h, force)),
        AnyHost.Select(h => (ClusterCommand)new FenceHost(h, "lease expired")),
        Gen.Select(AnyHost, Gen.Bool, (h, seen) => (ClusterCommand)new UnfenceHost(h, seen ? SeesOwnFence : T0)),
        Gen.Select(AnyVolume, AnyHost.Array[0, 3], (v, hosts) => (ClusterCommand)new CreateVolume(v, Guid.Empty, 1 << 20, [.. hosts], 7)),
        AnyVolume.Select(v => (ClusterCommand)new DeleteVolume(v)),
        Gen.Select(AnyVolume, AnyHost, Gen.Bool, (v, h, force) => (ClusterCommand)new PromoteCopy(v, h, force)),
        Gen.Select(AnyVolume, AnyHost, (v, h) => (ClusterCommand)new DemoteCopy(v, h)),
        Gen.Select(AnyVolume, AnyHost, AnyHost, Gen.ULong[0, 4], (v, peer, by, epoch) => (ClusterCommand)new OutdateCopy(v, peer, by, epoch)),
        Gen.Select(AnyVolume, AnyHost, (v, h) => (ClusterCommand)new ClearOutdated(v, h)),
        Gen.Select(AnyVm, AnyVolume.Array[0, 2], (m, vols) => (ClusterCommand)Vm(m, vols)),
        Gen.Select(AnyVm, Gen.Bool, (m, run) => (ClusterCommand)new SetVmDesiredState(m, run ? VmDesiredState.Running : VmDesiredState.Stopped)),
        Gen.Select(AnyVm, AnyHost, Gen.Bool, (m, h, none) => (ClusterCommand)new PlaceVm(m, none ? null : h)),
        AnyVm.Select(m => (ClusterCommand)new DeleteVm(m)),
        Gen.Select(AnyVm, AnyHost, (m, h) => (ClusterCommand)new RestartVm(m, h)),
        Gen.Select(AnyVm, AnyHost, (m, h) => (ClusterCommand)new RelocateVm(m, h)),
        AnyVm.Select(m => (ClusterCommand)new GiveUpVm(m, "crashed too often")),
        Gen.Select(AnyVm, AnyHost, (m, h) => (ClusterCommand)new VmHealthy(m, h, "healthy")),
        Gen.Select(AnyHost, AnyReport, (h, report) => (ClusterCommand)new ReportHost(h, report)),
        Gen.Select(AnyHost, Gen.Bool, (h, on) => (ClusterCommand)new SetMaintenance(h, on)),
        Gen.Bool.Select(on => (ClusterCommand)new SetClusterSettings(on)),
        AnyHost.Select(h => (ClusterCommand)new CompactLog(h)),
        Gen.Select(AnyVm, AnyHost, AnyMigration, Gen.Bool, (m, h, id, drain) => (ClusterCommand)new BeginMigration(m, h, id, drain)),
        Gen.Select(AnyVm, AnyMigration, (m, id) => (ClusterCommand)new CompleteMigration(m, id, TimeSpan.FromMilliseconds(30), null)),
        Gen.Select(AnyVm, AnyMigration, (m, id) => (ClusterCommand)new AbortMigration(m, id, "target died")));

    /// <summary>Stands for "the time of the host's current fence" in a generated <see cref="UnfenceHost"/>.</summary>
    private static readonly DateTimeOffset SeesOwnFence = DateTimeOffset.MinValue;

    /// <summary>A sequence of commands one minute apart, after the cluster was created on host a.</summary>
    internal static readonly Gen<ClusterCommand[]> Sequence = Command.Array[1, 60].Select(commands =>
        commands.Select((c, i) => c with { At = T0.AddMinutes(i) }).Prepend(new InitializeCluster(Guid.Empty, "lab", "CA", Host("a")) { At = T0 }).ToArray());

    [Fact]
    public void Invariants_hold_after_every_command() =>
        Sequence.Sample(commands =>
        {
            var state = ClusterState.Empty;
            foreach (var generated in commands)
            {
                var command = generated is UnfenceHost { Seen: var seen } unfence && seen == SeesOwnFence && state.Host(unfence.Name)?.Fenced is { } fence
                    ? unfence with { Seen = fence.At }
                    : generated;
                var (next, outcome) = ClusterStateMachine.Apply(state, command);
                if (!outcome.IsOk)
                {
                    Assert.Equal(Content(state), Content(next));
                }

                CheckInvariants(state, next);
                state = next;
            }
        }, iter: 400);

    [Fact]
    public void Replicas_that_apply_the_same_commands_hold_the_same_state_and_a_snapshot_restores_it() =>
        Sequence.Sample(commands =>
        {
            var one = commands.Aggregate(ClusterState.Empty, (s, c) => ClusterStateMachine.Apply(s, c).State);
            var other = commands.Aggregate(ClusterState.Empty, (s, c) => ClusterStateMachine.Apply(s, Roundtrip(c)).State);
            var json = JsonSerializer.Serialize(one, FerryJson.Options);
            Assert.Equal(json, JsonSerializer.Serialize(other, FerryJson.Options));

            var restored = JsonSerializer.Deserialize<ClusterState>(json, FerryJson.Options)!;
            Assert.Equal(json, JsonSerializer.Serialize(restored, FerryJson.Options));
        }, iter: 200);

    [Fact]
    public void Applying_every_command_twice_is_the_same_as_applying_it_once() =>
        Sequence.Sample(commands =>
        {
            var once = commands.Aggregate(ClusterState.Empty, (s, c) => ClusterStateMachine.Apply(s, c).State);
            var twice = commands.Aggregate(ClusterState.Empty, (s, c) => ClusterStateMachine.Apply(ClusterStateMachine.Apply(s, c).State, c).State);
            Assert.Equal(JsonSerializer.Serialize(once, FerryJson.Options), JsonSerializer.Serialize(twice, FerryJson.Options));
        }, iter: 200);

    private static ClusterCommand Roundtrip(ClusterCommand command) =>
        JsonSerializer.Deserialize<ClusterCommand>(JsonSerializer.Serialize(command, FerryJson.Options), FerryJson.Options)!;

    private static void CheckInvariants(ClusterState before, ClusterState after)
    {
        Assert.NotEmpty(after.Hosts);
        foreach (var volume in after.Volumes.Values)
        {
            // One primary per volume, and it holds a copy; epochs only grow.
            Assert.True(volume.Primary is null || volume.Hosts.Contains(volume.Primary), $"{volume.Name}: primary {volume.Primary} holds no copy");
            Assert.True(volume.Primary is null || after.Hosts[volume.Primary].Fenced is null, $"{volume.Name}: primary on fenced host {volume.Primary}");
            Assert.All(volume.Outdated.Keys, h => Assert.Contains(h, volume.Hosts));
            Assert.All(volume.Hosts, h => Assert.Equal(HostRole.Member, after.Hosts[h].Role));
            if (before.Volume(volume.Name) is { } earlier && earlier.Id == volume.Id)
            {
                Assert.True(volume.Epoch >= earlier.Epoch, $"{volume.Name}: epoch went from {earlier.Epoch} to {volume.Epoch}");
            }
        }

        foreach (var vm in after.Vms.Values)
        {
            // Restarts and moves stay within the VM's limits, and the count of grants only grows.
            Assert.True(vm.Recoveries.Restarts <= vm.RestartLimits.MaxRestarts && vm.Recoveries.Relocations <= vm.RestartLimits.MaxRelocations, $"{vm.Name}: {vm.Recoveries}");
            Assert.True(before.Vm(vm.Name) is not { } was || was.DefinedAt != vm.DefinedAt || vm.Recoveries.Grants >= was.Recoveries.Grants, $"{vm.Name}: grants went back");

            // A VM is placed on at most one host, and it is a member that exists and is not fenced.
            Assert.True(vm.Host is null || after.Host(vm.Host) is { Role: HostRole.Member, Fenced: null }, $"{vm.Name} placed on {vm.Host}");
            Assert.All(vm.Spec.Disks, d => Assert.True(d.Volume is null || after.Volumes.ContainsKey(d.Volume)));

            // A migration runs from where the VM is placed to another member that takes part; its disks stay primary at the source.
            if (vm.Migration is { } m)
            {
                Assert.True(m.Source == vm.Host && m.Target != m.Source, $"{vm.Name}: migrating from {m.Source} to {m.Target}, placed on {vm.Host}");
                Assert.True(after.Host(m.Target) is { Role: HostRole.Member, Fenced: null }, $"{vm.Name}: migrating to {m.Target}");
                Assert.All(vm.Spec.Disks.Select(d => d.Volume).OfType<string>(), v => Assert.Equal(m.Source, after.Volume(v)!.Primary));
            }
        }

        foreach (var token in before.Tokens.Values.Where(t => t.UsedBy is not null))
        {
            // A used token is never used again.
            Assert.True(!after.Tokens.TryGetValue(token.Id, out var now) || now.UsedBy == token.UsedBy, $"token {token.Id} used by {token.UsedBy} changed");
        }

        Assert.Equal(after.Hosts.Count, after.Hosts.Values.Select(h => h.ConsensusAddress).Distinct().Count());
    }
}
