using System.Collections.Immutable;
using Ferry.Cluster.Reconcile;
using Ferry.Cluster.State;
using Ferry.Hypervisor;
using Ferry.Storage.Replication.Wire;
using Ferry.Storage.Volumes;
using static Ferry.Tests.Cluster.ClusterFixtures;

namespace Ferry.Tests.Cluster;

/// <summary>Live migration and maintenance in the state and the plans: who may start one, how it ends, and who leaves what alone meanwhile.</summary>
public class MigrationPlanTests
{
    private static readonly Guid Id = Guid.NewGuid();

    /// <summary>Hosts a, b, c; v1 on a and b, primary on a; m1 running on a; both copies up to date and connected.</summary>
    private static ClusterState Running()
    {
        var state = ThreeHosts().Apply(Volume("v1", "a", "b"), Vm("m1", "v1"));
        return state.Apply(
            new SetVmDesiredState("m1", VmDesiredState.Running) { At = T0 },
            new PlaceVm("m1", "a") { At = T0 },
            new PromoteCopy("v1", "a") { At = T0 },
            Report("a", CopyRole.Primary, VmState.Running),
            Report("b", CopyRole.Secondary, null));
    }

    private static ReportHost Report(string host, CopyRole role, VmState? vm, ImmutableDictionary<string, CopyReport>? copies = null) => new(host, new HostReport(
        T0,
        copies ?? ImmutableDictionary<string, CopyReport>.Empty.Add("v1", new CopyReport(DiskState.UpToDate, role, ConnectionState.Connected, 1)),
        vm is { } state ? ImmutableDictionary<string, VmReport>.Empty.Add("m1", new VmReport(state)) : ImmutableDictionary<string, VmReport>.Empty)) { At = T0 };

    private static BeginMigration Begin(string target = "b") => new("m1", target, Id) { At = T0 };

    private static LocalView View(ClusterState state, string me, CopyRole role, VmState? vm, bool twoPrimaries = false)
    {
        var volume = state.Volume("v1")!;
        var copies = new Dictionary<string, LocalCopy>
        {
            ["v1"] = new(volume.Id, role, DiskState.UpToDate, 1, true, volume.Protocol, LocalPlan.PeersOf(me, state, volume), twoPrimaries),
        };
        var vms = vm is { } s ? new Dictionary<string, LocalVm> { ["m1"] = new(state.Vm("m1")!.Spec, s, true) } : [];
        return new LocalView(copies, vms);
    }

    [Fact]
    public void A_migration_starts_only_for_a_running_vm_to_a_host_with_an_up_to_date_connected_copy_of_a_two_copy_volume()
    {
        var state = Running();
        Assert.Equal("b", state.Apply(Begin()).Vm("m1")!.Migration!.Target);

        Assert.Contains("runs on a already", state.Refused(Begin("a")).Message);
        Assert.Contains("holds no copy", state.Refused(Begin("c")).Message);
        Assert.Contains("no host named", state.Refused(Begin("z")).Message);
        Assert.Contains("in maintenance", state.Apply(new SetMaintenance("b", true) { At = T0 }).Refused(Begin()).Message);
        Assert.Contains("not running", state.Apply(Report("a", CopyRole.Primary, VmState.Stopped)).Refused(Begin()).Message);
        var behind = ImmutableDictionary<string, CopyReport>.Empty.Add("v1", new CopyReport(DiskState.Inconsistent, CopyRole.Secondary, ConnectionState.SyncTarget, 1));
        Assert.Contains("not UpToDate and connected", state.Apply(Report("b", CopyRole.Secondary, null, behind)).Refused(Begin()).Message);
        Assert.Contains("migrating already", state.Apply(Begin()).Refused(new BeginMigration("m1", "b", Guid.NewGuid()) { At = T0 }).Message);
        Assert.Contains("downtime limit", state.Refused(Begin() with { Limits = MigrationLimits.Default with { MaxDowntime = TimeSpan.Zero } }).Message);

        ClusterState Placed(CreateVolume volume) => ThreeHosts().Apply(volume, Vm("m1", "v1"), new SetVmDesiredState("m1", VmDesiredState.Running) { At = T0 },
            new PlaceVm("m1", "a") { At = T0 }, new PromoteCopy("v1", "a") { At = T0 }, Report("a", CopyRole.Primary, VmState.Running), Report("b", CopyRole.Secondary, null));
        Assert.Equal("b", Placed(Volume("v1", "a", "b", "c")).Apply(Begin()).Vm("m1")!.Migration!.Target);
        Assert.Contains("needs protocol C", Placed(Volume("v1", "a", "b") with { Protocol = ReplicationProtocol.A }).Refused(Begin()).Message);
    }

    [Fact]
    public void A_completed_migration_moves_the_vm_and_its_primaries_and_an_aborted_one_leaves_them()
    {
        var state = Running().Apply(Begin());
        var done = state.Apply(new CompleteMigration("m1", Id, TimeSpan.FromMilliseconds(30), TimeSpan.FromMilliseconds(80)) { At = T0.AddSeconds(2) });
        Assert.Equal(("b", "b", 2UL), (done.Vm("m1")!.Host, done.Volume("v1")!.Primary, done.Volume("v1")!.Epoch));

        // The target may still be outdating a copy at the epoch it shared with the source; the source is stale.
        Assert.Equal("b", done.Apply(new OutdateCopy("v1", "a", "b", 1) { At = T0 }).Volume("v1")!.Outdated["a"].ByHost);
        Assert.Contains("stale", done.Refused(new OutdateCopy("v1", "b", "a", 1) { At = T0 }).Message);
        Assert.Null(done.Vm("m1")!.Migration);
        Assert.Equal((true, TimeSpan.FromSeconds(2)), (done.Vm("m1")!.LastMigration!.Succeeded, done.Vm("m1")!.LastMigration!.Duration));

        var failed = state.Apply(new AbortMigration("m1", Id, "target could not take it") { At = T0 });
        Assert.Equal(("a", "a"), (failed.Vm("m1")!.Host, failed.Volume("v1")!.Primary));
        Assert.Equal("target could not take it", failed.Vm("m1")!.LastMigration!.Error);

        Assert.Contains("no migration", state.Refused(new AbortMigration("m1", Guid.NewGuid(), "x") { At = T0 }).Message);
        Assert.Contains("no migration", failed.Refused(new CompleteMigration("m1", Id, null, null) { At = T0 }).Message);
    }

    [Fact]
    public void A_fence_of_either_host_ends_the_migration_and_only_the_sources_fence_unplaces_the_vm()
    {
        var state = Running().Apply(Begin());
        var targetFailed = state.Apply(new FenceHost("b", "lease expired") { At = T0 });
        Assert.Equal("a", targetFailed.Vm("m1")!.Host);
        Assert.Contains("b failed", targetFailed.Vm("m1")!.LastMigration!.Error);

        var sourceFailed = state.Apply(new FenceHost("a", "lease expired") { At = T0 });
        Assert.Null(sourceFailed.Vm("m1")!.Host);
        Assert.Null(sourceFailed.Vm("m1")!.Migration);
        Assert.Equal("b", Assert.IsType<PlaceVm>(Assert.Single(ResourcePlan.Next(sourceFailed))).Host);
    }

    [Fact]
    public void While_it_migrates_its_placement_and_its_disks_primaries_change_only_through_the_migration()
    {
        var state = Running().Apply(Begin());
        Assert.Contains("migrating", state.Refused(new PlaceVm("m1", "b") { At = T0 }).Message);
        Assert.Contains("migrating", state.Refused(new PromoteCopy("v1", "b") { At = T0 }).Message);
        Assert.Contains("migrating", state.Refused(new DemoteCopy("v1", "a") { At = T0 }).Message);
        Assert.Contains("migrating", state.Refused(new RelocateVm("m1", "a") { At = T0 }).Message);

        var removed = state.Apply(new RemoveHost("b", Force: true) { At = T0 });
        Assert.Equal(("a", false), (removed.Vm("m1")!.Host, removed.Vm("m1")!.LastMigration!.Succeeded));
    }

    [Fact]
    public void While_it_migrates_neither_host_touches_the_vm_or_its_disks_and_the_leader_plans_nothing_for_it()
    {
        var state = Running().Apply(Begin());

        // The target runs it paused with its copy a second primary; the source's copy is open to one.
        Assert.Empty(LocalPlan.Steps("b", state, View(state, "b", CopyRole.Primary, VmState.Paused, twoPrimaries: true)));
        Assert.Empty(LocalPlan.Steps("a", state, View(state, "a", CopyRole.Primary, VmState.Paused, twoPrimaries: true)));
        Assert.Empty(ResourcePlan.Next(state.Apply(Report("a", CopyRole.Primary, VmState.Crashed))));
    }

    [Fact]
    public void After_the_migration_the_source_stops_and_demotes_and_the_target_runs_it_and_closes_its_copy_to_a_second_primary()
    {
        var done = Running().Apply(Begin(), new CompleteMigration("m1", Id, null, null) { At = T0 });
        var source = LocalPlan.Steps("a", done, View(done, "a", CopyRole.Primary, VmState.Paused, twoPrimaries: true));
        Assert.Equal(
            [new LocalStep.StopVm("m1", Force: true), new LocalStep.ForgetVm("m1")],
            source.Where(s => s is LocalStep.StopVm or LocalStep.ForgetVm));
        Assert.Contains(new LocalStep.DemoteCopy("v1"), source);

        var target = LocalPlan.Steps("b", done.Apply(Report("a", CopyRole.Secondary, null)), View(done, "b", CopyRole.Primary, VmState.Paused, twoPrimaries: true));
        Assert.Contains(target, s => s is LocalStep.ConfigureCopy);
        Assert.Contains(new LocalStep.RaiseEpoch("v1", 2), target);
        Assert.Contains(new LocalStep.ResumeVm("m1"), target);
    }

    [Fact]
    public void A_host_never_starts_a_vm_that_another_unfenced_host_still_reports_up()
    {
        // The migration failed after the target had it; the target has not let go yet.
        var state = Running().Apply(Begin(), new AbortMigration("m1", Id, "source lost it") { At = T0 }, Report("b", CopyRole.Primary, VmState.Running));
        var steps = LocalPlan.Steps("a", state, View(state, "a", CopyRole.Primary, VmState.Stopped));
        Assert.DoesNotContain(steps, s => s is LocalStep.StartVm);
        Assert.Contains(steps, s => s is LocalStep.Blocked { Reason: var r } && r.Contains("b, which still reports", StringComparison.Ordinal));

        Assert.Contains(new LocalStep.StartVm("m1"), LocalPlan.Steps("a", state.Apply(new FenceHost("b", "lease expired") { At = T0 }), View(state, "a", CopyRole.Primary, VmState.Stopped)));
    }

    [Fact]
    public void A_stopped_vm_left_on_a_drained_host_starts_elsewhere_with_its_disks()
    {
        var state = Running().Apply(new SetVmDesiredState("m1", VmDesiredState.Stopped) { At = T0 }, new SetMaintenance("a", true) { At = T0 });
        Assert.Equal(("a", "a"), (state.Vm("m1")!.Host, state.Volume("v1")!.Primary));

        // Its only other copy is on b, so while a is drained nothing could take it after b's loss: N+1 refuses it.
        Assert.Contains("would break N+1", state.Refused(new SetVmDesiredState("m1", VmDesiredState.Running) { At = T0 }).Message);

        state = state.Apply(new SetClusterSettings(NPlusOne: false) { At = T0 }, new SetVmDesiredState("m1", VmDesiredState.Running) { At = T0 });
        Assert.Equal((null, null), (state.Vm("m1")!.Host, state.Volume("v1")!.Primary));
        var place = Assert.IsType<PlaceVm>(Assert.Single(ResourcePlan.Next(state)));
        Assert.Equal("b", place.Host);
    }

    [Fact]
    public void A_drain_moves_what_others_depend_on_first()
    {
        var state = ThreeHosts().Apply(
            Volume("v1", "a", "b"),
            Volume("v2", "a", "b"),
            new DefineVm(new VmSpec { Name = "zdb", Disks = [DiskSpec.ForVolume("v1")] }) { At = T0 },
            new DefineVm(new VmSpec { Name = "app", Disks = [DiskSpec.ForVolume("v2")] }, Rules: new VmRules(DependsOn: ["zdb"])) { At = T0 });
        foreach (var (vm, volume) in new[] { ("zdb", "v1"), ("app", "v2") })
        {
            state = state.Apply(new SetVmDesiredState(vm, VmDesiredState.Running) { At = T0 }, new PlaceVm(vm, "a") { At = T0 }, new PromoteCopy(volume, "a") { At = T0 });
        }

        var copies = ImmutableDictionary<string, CopyReport>.Empty;
        state = state.Apply(
            new ReportHost("a", new HostReport(T0, copies, ImmutableDictionary<string, VmReport>.Empty.Add("zdb", new VmReport(VmState.Running)).Add("app", new VmReport(VmState.Running)))) { At = T0 },
            new ReportHost("b", new HostReport(T0, copies.Add("v1", new CopyReport(DiskState.UpToDate, CopyRole.Secondary, ConnectionState.Connected, 1)).Add("v2", new CopyReport(DiskState.UpToDate, CopyRole.Secondary, ConnectionState.Connected, 1)), ImmutableDictionary<string, VmReport>.Empty)) { At = T0 },
            new SetMaintenance("a", true) { At = T0 });
        Assert.Equal("zdb", ResourcePlan.NextMove(state)!.Name);

        // One that cannot leave (its copy elsewhere is behind) is passed over, and says why.
        var behind = state.Apply(new ReportHost("b", new HostReport(T0, copies.Add("v1", new CopyReport(DiskState.Inconsistent, CopyRole.Secondary, ConnectionState.SyncTarget, 1)).Add("v2", new CopyReport(DiskState.UpToDate, CopyRole.Secondary, ConnectionState.Connected, 1)), ImmutableDictionary<string, VmReport>.Empty)) { At = T0 });
        Assert.Equal("app", ResourcePlan.NextMove(behind)!.Name);
        Assert.Contains("is drained, but it cannot move", ResourcePlan.Waiting(behind, behind.Vm("zdb")!));
    }

    [Fact]
    public void A_drained_hosts_vms_move_one_at_a_time_and_come_home_when_it_is_undrained()
    {
        var drained = Running().Apply(new SetMaintenance("a", true) { At = T0 });
        var move = Assert.IsType<BeginMigration>(Assert.Single(ResourcePlan.Next(drained)));
        Assert.Equal(("m1", "b", true), (move.Name, move.Target, move.ForDrain));

        var moved = drained.Apply(move, new CompleteMigration("m1", move.MigrationId, null, null) { At = T0 });
        Assert.Equal(("b", "a"), (moved.Vm("m1")!.Host, moved.Vm("m1")!.Home));
        Assert.Null(ResourcePlan.NextMove(moved.Apply(Report("b", CopyRole.Primary, VmState.Running), Report("a", CopyRole.Secondary, null))));

        var undrained = moved.Apply(new SetMaintenance("a", false) { At = T0 }, Report("b", CopyRole.Primary, VmState.Running), Report("a", CopyRole.Secondary, null));
        var back = Assert.IsType<BeginMigration>(ResourcePlan.NextMove(undrained));
        Assert.Equal(("a", false), (back.Target, back.ForDrain));
        var home = undrained.Apply(back, new CompleteMigration("m1", back.MigrationId, null, null) { At = T0 });
        Assert.Equal("a", home.Vm("m1")!.Host);
        Assert.Null(home.Vm("m1")!.Home);
    }
}
