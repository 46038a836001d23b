using System.Collections.Immutable;
using CsCheck;
using Ferry.Cluster.Reconcile;
using Ferry.Cluster.State;
using Ferry.Hypervisor;
using Ferry.Storage.Replication;
using Ferry.Storage.Replication.Wire;
using Ferry.Storage.Volumes;
using static Ferry.Tests.Cluster.ClusterFixtures;
using VmPlacement = Ferry.Cluster.Reconcile.Placement;

namespace Ferry.Tests.Cluster;

/// <summary>Placement, the leader's resource plan and each host's local plan: pure functions of the state.</summary>
public class ReconcileTests
{
    private static readonly LocalView Nothing = new(new Dictionary<string, LocalCopy>(), new Dictionary<string, LocalVm>());

    /// <summary>Hosts a, b, c; volume v1 on a and b; VM m1 on it.</summary>
    private static ClusterState WithVm() => ThreeHosts().Apply(Volume("v1", "a", "b"), Vm("m1", "v1"));

    private static ClusterState Running(ClusterState state, string vm = "m1") => state.Apply(new SetVmDesiredState(vm, VmDesiredState.Running) { At = T0 });

    // --- Placement ---------------------------------------------------------------------------------------

    [Fact]
    public void A_vm_goes_where_its_disks_are_primary()
    {
        var state = WithVm().Apply(new PromoteCopy("v1", "b") { At = T0 });
        Assert.Equal("b", VmPlacement.Choose(state, state.Vm("m1")!).Value);
    }

    [Fact]
    public void Without_a_primary_the_least_loaded_host_with_every_disk_is_chosen()
    {
        var state = Running(ThreeHosts().Apply(Volume("v1", "a", "b"), Volume("v2", "a", "b"), Vm("m1", "v1"), Vm("m2", "v2"), new PlaceVm("m1", "a") { At = T0 }));
        Assert.Equal("b", VmPlacement.Choose(state, state.Vm("m2")!).Value);
        Assert.Equal("a", VmPlacement.Choose(WithVm(), WithVm().Vm("m1")!).Value);
    }

    [Fact]
    public void Outdated_copies_and_witnesses_are_never_chosen()
    {
        var state = WithVm().Apply(new OutdateCopy("v1", "a", "b", 0) { At = T0 });
        Assert.Equal("b", VmPlacement.Choose(state, state.Vm("m1")!).Value);

        state = state.Apply(new OutdateCopy("v1", "b", "b", 0) { At = T0 });
        Assert.Contains("no host holds an up-to-date copy", VmPlacement.Choose(state, state.Vm("m1")!).Error!.Message);

        // A VM without disks may go to any member, but never to the witness, however loaded the member is.
        var witnessed = ClusterState.Empty.Apply(
            new InitializeCluster(Guid.NewGuid(), "lab", "CA", Host("a")) { At = T0 },
            new IssueJoinToken("t", "s", T0.AddHours(1)) { At = T0 },
            new JoinHost("t", "s", Host("w", HostRole.Witness)) { At = T0 },
            Vm("m1"), Vm("m2"), new PlaceVm("m1", "a") { At = T0 }, new SetVmDesiredState("m1", VmDesiredState.Running) { At = T0 });
        Assert.Equal("a", VmPlacement.Choose(witnessed, witnessed.Vm("m2")!).Value);
    }

    [Fact]
    public void Disks_primary_on_two_hosts_are_refused_with_both_named()
    {
        var state = ThreeHosts().Apply(
            Volume("v1", "a", "b"), Volume("v2", "a", "b"),
            new DefineVm(new VmSpec { Name = "m1", Disks = [DiskSpec.ForVolume("v1"), DiskSpec.ForVolume("v2")] }) { At = T0 },
            new PromoteCopy("v1", "a") { At = T0 }, new PromoteCopy("v2", "b") { At = T0 });
        Assert.Contains("(a, b)", VmPlacement.Choose(state, state.Vm("m1")!).Error!.Message);
    }

    // --- Resource plan -------------------------------------------------------------------------------------

    [Fact]
    public void A_vm_to_run_is_placed_then_its_disks_promoted_there_and_then_nothing_more()
    {
        var state = Running(WithVm());
        var place = Assert.IsType<PlaceVm>(Assert.Single(ResourcePlan.Next(state)));
        Assert.Equal(("m1", "a"), (place.Name, place.Host));

        state = state.Apply(place with { At = T0 });
        var promote = Assert.IsType<PromoteCopy>(Assert.Single(ResourcePlan.Next(state)));
        Assert.Equal(("v1", "a", false), (promote.Volume, promote.Host, promote.Force));

        state = state.Apply(promote with { At = T0 });
        Assert.Empty(ResourcePlan.Next(state));
        Assert.Null(ResourcePlan.Waiting(state, state.Vm("m1")!));
    }

    [Fact]
    public void Stopped_vms_and_outdated_disks_get_nothing()
    {
        Assert.Empty(ResourcePlan.Next(WithVm()));

        var state = Running(WithVm()).Apply(new PlaceVm("m1", "a") { At = T0 }, new OutdateCopy("v1", "a", "b", 0) { At = T0 });
        Assert.Empty(ResourcePlan.Next(state));
        Assert.Contains("Outdated on a", ResourcePlan.Waiting(state, state.Vm("m1")!));
    }

    [Fact]
    public void A_vm_follows_its_disks_only_once_its_host_reported_it_down_on_secondary_copies()
    {
        var state = Running(WithVm()).Apply(new PlaceVm("m1", "a") { At = T0 }, new PromoteCopy("v1", "b") { At = T0 });
        Assert.Empty(ResourcePlan.Next(state)); // a has not reported: it may still run m1
        Assert.Contains("primary on b, not a", ResourcePlan.Waiting(state, state.Vm("m1")!));

        state = state.Apply(Report("a", CopyRole.Primary, VmState.Stopped));
        Assert.Empty(ResourcePlan.Next(state)); // its copy is still primary there

        state = state.Apply(Report("a", CopyRole.Secondary, VmState.Running));
        Assert.Empty(ResourcePlan.Next(state)); // m1 still up there

        state = state.Apply(Report("a", CopyRole.Secondary, VmState.Stopped));
        var place = Assert.IsType<PlaceVm>(Assert.Single(ResourcePlan.Next(state)));
        Assert.Equal("b", place.Host);
    }

    [Fact]
    public void The_vms_of_a_fenced_host_are_placed_on_a_survivor_with_a_current_copy_and_their_disks_promoted_there()
    {
        var state = Running(WithVm()).Apply(new PlaceVm("m1", "a") { At = T0 }, new PromoteCopy("v1", "a") { At = T0 }, new FenceHost("a", "lease expired") { At = T0 });
        var place = Assert.IsType<PlaceVm>(Assert.Single(ResourcePlan.Next(state)));
        Assert.Equal(("m1", "b"), (place.Name, place.Host));

        state = state.Apply(place with { At = T0 });
        var promote = Assert.IsType<PromoteCopy>(Assert.Single(ResourcePlan.Next(state)));
        Assert.Equal(("v1", "b"), (promote.Volume, promote.Host));

        // Had b been Outdated, nothing would take m1, and it would say why.
        var stuck = Running(WithVm()).Apply(new PlaceVm("m1", "a") { At = T0 }, new PromoteCopy("v1", "a") { At = T0 }, new OutdateCopy("v1", "b", "a", 1) { At = T0 }, new FenceHost("a", "lease expired") { At = T0 });
        Assert.Empty(ResourcePlan.Next(stuck));
        Assert.Contains("no host holds an up-to-date copy", ResourcePlan.Waiting(stuck, stuck.Vm("m1")!));
    }

    [Fact]
    public void A_crashed_vm_is_restarted_on_its_host_then_moved_then_given_up_with_the_reason()
    {
        var state = Running(WithVm()).Apply(new PlaceVm("m1", "a") { At = T0 }, new PromoteCopy("v1", "a") { At = T0 });
        Assert.Empty(ResourcePlan.Next(state.Apply(Report("a", CopyRole.Primary, VmState.Running))));

        // The first crash: a restart on a, once; a report still from before the grant asks for nothing more.
        state = state.Apply(Crash("a", startedAt: 0));
        var restart = Assert.IsType<RestartVm>(Assert.Single(ResourcePlan.Next(state)));
        state = state.Apply(restart with { At = T0 });
        Assert.Empty(ResourcePlan.Next(state));

        // It crashes again in the granted run: it moves to b, a's primary given up, a avoided.
        state = state.Apply(Crash("a", startedAt: 1));
        var relocate = Assert.IsType<RelocateVm>(Assert.Single(ResourcePlan.Next(state)));
        state = state.Apply(relocate with { At = T0 });
        Assert.Equal((null, null, "a"), (state.Vm("m1")!.Host, state.Volume("v1")!.Primary, state.Vm("m1")!.Recoveries.Avoid));
        Assert.Equal("b", Assert.IsType<PlaceVm>(Assert.Single(ResourcePlan.Next(state))).Host);
        state = state.Apply(new PlaceVm("m1", "b") { At = T0 }, new PromoteCopy("v1", "b") { At = T0 });

        // On b: a restart, then the limits are spent and the cluster says why it stops.
        state = state.Apply(Crash("b", startedAt: 1));
        state = state.Apply(Assert.IsType<RestartVm>(Assert.Single(ResourcePlan.Next(state))) with { At = T0 });
        state = state.Apply(Crash("b", startedAt: 2));
        var giveUp = Assert.IsType<GiveUpVm>(Assert.Single(ResourcePlan.Next(state)));
        var beforeGivingUp = state;
        state = state.Apply(giveUp with { At = T0 });
        Assert.Contains("crashed on b after 1 restarts there and 1 moves", ResourcePlan.Waiting(state, state.Vm("m1")!));
        Assert.Empty(ResourcePlan.Next(state));

        // Started again by hand, or healthy after a start, it has its budget back; the count of grants goes on.
        Assert.Equal(VmRecovery.None with { Grants = 2 }, Running(state).Vm("m1")!.Recoveries);
        Assert.Equal(VmRecovery.None with { Grants = 2 }, beforeGivingUp.Apply(new VmHealthy("m1", "b", "VM m1 answered") { At = T0 }).Vm("m1")!.Recoveries);
    }

    [Fact]
    public void A_crashed_vm_is_started_again_only_once_the_cluster_granted_the_restart()
    {
        var state = Running(WithVm()).Apply(new PlaceVm("m1", "a") { At = T0 }, new PromoteCopy("v1", "a") { At = T0 });
        var crashed = Local(Copy(state, "a", CopyRole.Primary), ("m1", VmState.Crashed, true));
        Assert.Empty(LocalPlan.Steps("a", state, crashed));

        state = state.Apply(Crash("a", startedAt: 0), new RestartVm("m1", "a") { At = T0 });
        Assert.IsType<LocalStep.StartVm>(Assert.Single(LocalPlan.Steps("a", state, crashed)));

        // A guest that powered itself off is started again at once: that is no crash.
        Assert.IsType<LocalStep.StartVm>(Assert.Single(LocalPlan.Steps("a", state, Local(Copy(state, "a", CopyRole.Primary), ("m1", VmState.Stopped, true)))));
    }

    private static ReportHost Crash(string host, long startedAt) => new(host, new HostReport(
        T0,
        ImmutableDictionary<string, CopyReport>.Empty,
        ImmutableDictionary<string, VmReport>.Empty.Add("m1", new VmReport(VmState.Crashed, "exited with 137", startedAt)))) { At = T0 };

    [Fact]
    public void Applying_the_plan_never_fails_never_takes_a_primary_away_and_places_vms_only_where_their_disks_can_be() =>
        ClusterStatePropertyTests.Sequence.Sample(commands =>
        {
            var state = commands.Aggregate(ClusterState.Empty, (s, c) => ClusterStateMachine.Apply(s, c).State);
            for (var round = 0; round < 4; round++)
            {
                foreach (var command in ResourcePlan.Next(state))
                {
                    var (next, outcome) = ClusterStateMachine.Apply(state, command with { At = T0 });
                    Assert.True(outcome.IsOk, $"{command.Kind}: {outcome.Message}");
                    // Only a VM moved away after crashing takes its disks' primaries with it.
                    foreach (var volume in state.Volumes.Values.Where(v => v.Primary is not null && command is not RelocateVm))
                    {
                        Assert.Equal(volume.Primary, next.Volume(volume.Name)!.Primary);
                    }

                    if (command is PlaceVm { Host: { } host } place)
                    {
                        var vm = next.Vm(place.Name)!;
                        Assert.All(VmPlacement.VolumesOf(vm), v => Assert.Contains(host, next.Volume(v)!.Hosts));
                        Assert.True(state.Vm(place.Name)!.Host is not { } before || ResourcePlan.CannotRun(state, vm, before), $"{place.Name} moved off a host that may run it");
                    }

                    state = next;
                }
            }
        }, iter: 300);

    // --- Local plan ------------------------------------------------------------------------------------------

    [Fact]
    public void A_host_creates_its_missing_copy_seeded_with_its_peers()
    {
        var state = WithVm();
        var create = Assert.IsType<LocalStep.CreateCopy>(Assert.Single(LocalPlan.Steps("b", state, Nothing)));
        Assert.Equal(state.Volume("v1")!.Seed, create.Seed);
        Assert.Equal([new PeerAddress("a", "a:7481")], create.Peers);
        Assert.Empty(LocalPlan.Steps("c", state, Nothing));
    }

    [Fact]
    public void A_copy_follows_the_granted_primary_and_new_peers()
    {
        var state = WithVm().Apply(new PromoteCopy("v1", "a") { At = T0 });
        var a = Local(Copy(state, "a", CopyRole.Secondary));
        var promote = Assert.IsType<LocalStep.PromoteCopy>(Assert.Single(LocalPlan.Steps("a", state, a)));
        Assert.Equal(1UL, promote.Epoch);

        // A copy that has used the granted epoch already (and fenced itself since) is not promoted with it again: it gives the grant back.
        Assert.IsType<LocalStep.GiveUpPrimary>(Assert.Single(LocalPlan.Steps("a", state, Local(Copy(state, "a", CopyRole.Secondary) with { Epoch = 1 }))));

        var moved = state.Apply(new PromoteCopy("v1", "b") { At = T0 });
        Assert.IsType<LocalStep.DemoteCopy>(Assert.Single(LocalPlan.Steps("a", moved, Local(Copy(state, "a", CopyRole.Primary)))));

        var peers = Copy(state, "a", CopyRole.Primary) with { Peers = [] };
        Assert.IsType<LocalStep.ConfigureCopy>(Assert.Single(LocalPlan.Steps("a", state, Local(peers))));
    }

    [Fact]
    public void A_vm_placed_here_is_defined_then_started_once_its_disks_are_primary_here()
    {
        var state = Running(WithVm()).Apply(new PlaceVm("m1", "a") { At = T0 }, new PromoteCopy("v1", "a") { At = T0 });
        var define = Assert.IsType<LocalStep.DefineVm>(Assert.Single(LocalPlan.Steps("a", state, Local(Copy(state, "a", CopyRole.Primary)))));
        Assert.Equal("m1", define.Spec.Name);

        var secondary = Local(Copy(state, "a", CopyRole.Secondary) with { Epoch = 1 }, ("m1", VmState.Stopped, true));
        Assert.DoesNotContain(LocalPlan.Steps("a", state, secondary), s => s is LocalStep.StartVm);

        var ready = Local(Copy(state, "a", CopyRole.Primary), ("m1", VmState.Stopped, true));
        Assert.IsType<LocalStep.StartVm>(Assert.Single(LocalPlan.Steps("a", state, ready)));
        Assert.Empty(LocalPlan.Steps("a", state, Local(Copy(state, "a", CopyRole.Primary), ("m1", VmState.Running, true))));
    }

    [Fact]
    public void A_vm_whose_disks_went_elsewhere_is_stopped_at_once_before_its_copy_is_demoted()
    {
        var state = Running(WithVm()).Apply(new PlaceVm("m1", "a") { At = T0 }, new PromoteCopy("v1", "a") { At = T0 }, new PromoteCopy("v1", "b") { At = T0 });
        var steps = LocalPlan.Steps("a", state, Local(Copy(state, "a", CopyRole.Primary), ("m1", VmState.Running, true)));
        Assert.Equal([new LocalStep.StopVm("m1", Force: true), new LocalStep.DemoteCopy("v1")], steps);

        // Asked to stop where it stays: gracefully.
        var stopped = Running(WithVm()).Apply(new PlaceVm("m1", "a") { At = T0 }, new PromoteCopy("v1", "a") { At = T0 }, new SetVmDesiredState("m1", VmDesiredState.Stopped) { At = T0 });
        Assert.Equal([new LocalStep.StopVm("m1", Force: false)], LocalPlan.Steps("a", stopped, Local(Copy(stopped, "a", CopyRole.Primary), ("m1", VmState.Running, true))));
    }

    [Fact]
    public void What_the_cluster_deleted_is_stopped_forgotten_and_removed_but_what_it_did_not_make_is_left_alone()
    {
        var state = WithVm();
        var copy = Copy(state, "a", CopyRole.Secondary);
        var gone = state.Apply(new DeleteVm("m1") { At = T0 }, new DeleteVolume("v1") { At = T0 });
        Assert.Equal(
            [new LocalStep.StopVm("m1", Force: true), new LocalStep.ForgetVm("m1"), new LocalStep.DeleteCopy("v1")],
            LocalPlan.Steps("a", gone, Local(copy, ("m1", VmState.Running, true))));

        // Not the cluster's: untouched, and a cluster volume of the same name is blocked, not overwritten.
        Assert.Empty(LocalPlan.Steps("a", gone, Local(copy with { Managed = false }, ("m1", VmState.Running, false))));
        Assert.IsType<LocalStep.Blocked>(Assert.Single(LocalPlan.Steps("a", state, Local(copy with { Managed = false }))));

        // A VM that is not the cluster's still uses the copy: it stays.
        var blocked = LocalPlan.Steps("a", gone, Local(copy, ("other", VmState.Running, false)) with
        {
            Vms = new Dictionary<string, LocalVm> { ["other"] = new(new VmSpec { Name = "other", Disks = [DiskSpec.ForVolume("v1")] }, VmState.Running, false) },
        });
        Assert.IsType<LocalStep.Blocked>(Assert.Single(blocked));
    }

    [Fact]
    public void A_local_plan_never_starts_or_promotes_against_the_state_and_stops_before_it_demotes() =>
        Gen.Select(ClusterStatePropertyTests.Sequence, Gen.OneOf("a", "b", "c"), AnyLocal).Sample((commands, me, local) =>
        {
            var state = commands.Aggregate(ClusterState.Empty, (s, c) => ClusterStateMachine.Apply(s, c).State);
            var steps = LocalPlan.Steps(me, state, local);
            for (var i = 0; i < steps.Count; i++)
            {
                switch (steps[i])
                {
                    case LocalStep.StartVm start:
                        Assert.Equal(me, state.Vm(start.Name)!.Host);
                        Assert.All(VmPlacement.VolumesOf(state.Vm(start.Name)!), v => Assert.Equal(me, state.Volume(v)!.Primary));
                        break;
                    case LocalStep.PromoteCopy promote:
                        Assert.Equal(me, state.Volume(promote.Volume)!.Primary);
                        break;
                    case LocalStep.DemoteCopy or LocalStep.DeleteCopy:
                        var volume = steps[i].Subject;
                        Assert.True(local.Copies[volume].Managed);
                        var users = local.Vms.Where(vm => vm.Value.IsUp && vm.Value.Managed && vm.Value.Spec.Disks.Any(d => d.Volume == volume)).Select(vm => vm.Key);
                        Assert.All(users, user => Assert.Contains(steps.Take(i), s => s is LocalStep.StopVm stop && stop.Name == user));
                        break;
                }
            }
        }, iter: 400);

    private static readonly Gen<LocalView> AnyLocal = Gen.Select(
        Gen.Select(Gen.OneOf("v1", "v2"), Gen.Enum<CopyRole>(), Gen.Bool, Gen.ULong[0, 3], (v, role, managed, epoch) =>
            KeyValuePair.Create(v, new LocalCopy(Guid.Empty, role, DiskState.UpToDate, epoch, managed, ReplicationProtocol.C, []))).Array[0, 2],
        Gen.Select(Gen.OneOf("m1", "m2"), Gen.Enum<VmState>(), Gen.Bool, Gen.OneOf("v1", "v2"), (m, vmState, managed, v) =>
            KeyValuePair.Create(m, new LocalVm(new VmSpec { Name = m, Disks = [DiskSpec.ForVolume(v)] }, vmState, managed))).Array[0, 2],
        (copies, vms) => new LocalView(copies.DistinctBy(c => c.Key).ToDictionary(), vms.DistinctBy(v => v.Key).ToDictionary()));

    private static ReportHost Report(string host, CopyRole role, VmState vm) => new(host, new HostReport(
        T0,
        ImmutableDictionary<string, CopyReport>.Empty.Add("v1", new CopyReport(DiskState.UpToDate, role, ConnectionState.Connected, 1)),
        ImmutableDictionary<string, VmReport>.Empty.Add("m1", new VmReport(vm)))) { At = T0 };

    private static LocalCopy Copy(ClusterState state, string me, CopyRole role)
    {
        var volume = state.Volume("v1")!;
        // A primary holds the epoch it was promoted at; a secondary has not seen the grant yet.
        return new LocalCopy(volume.Id, role, DiskState.UpToDate, role == CopyRole.Primary ? volume.Epoch : 0, true, volume.Protocol, LocalPlan.PeersOf(me, state, volume));
    }

    private static LocalView Local(LocalCopy copy, params (string Name, VmState State, bool Managed)[] vms) => new(
        new Dictionary<string, LocalCopy> { ["v1"] = copy },
        vms.ToDictionary(v => v.Name, v => new LocalVm(new VmSpec { Name = v.Name, Disks = [DiskSpec.ForVolume("v1")] }, v.State, v.Managed)));
}
