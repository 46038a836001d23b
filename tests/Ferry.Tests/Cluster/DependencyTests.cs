using System.Collections.Immutable;
using Ferry.Cluster.Reconcile;
using Ferry.Cluster.State;
using Ferry.Hypervisor;
using Ferry.Storage.Replication.Wire;
using Ferry.Storage.Volumes;
using static Ferry.Tests.Cluster.ClusterFixtures;

namespace Ferry.Tests.Cluster;

/// <summary>Start order: a VM starts only once what it depends on is healthy, waits at most its timeout, and says what it waits for.</summary>
public class DependencyTests
{
    private static readonly string[] Disks = ["v1", "v2"];

    /// <summary>db (with a health check) on v1 and app (depending on db) on v2, both volumes on a and b, both to run on a.</summary>
    private static ClusterState DbAndApp(TimeSpan? timeout = null)
    {
        var db = new DefineVm(new VmSpec { Name = "db", Disks = [DiskSpec.ForVolume("v1")], HealthCheck = "http://127.0.0.1:8080/health" }) { At = T0 };
        var app = new DefineVm(new VmSpec { Name = "app", Disks = [DiskSpec.ForVolume("v2")] }, Rules: new VmRules(DependsOn: ["db"], DependencyTimeout: timeout)) { At = T0 };
        return ThreeHosts().Apply(Volume("v1", "a", "b"), Volume("v2", "a", "b"), db, app).Apply(
            new SetVmDesiredState("db", VmDesiredState.Running) { At = T0 },
            new SetVmDesiredState("app", VmDesiredState.Running) { At = T0 },
            new PlaceVm("db", "a") { At = T0 },
            new PlaceVm("app", "a") { At = T0 },
            new PromoteCopy("v1", "a") { At = T0 },
            new PromoteCopy("v2", "a") { At = T0 });
    }

    private static ReportHost Runs(string host, params (string Vm, VmState State)[] vms) => new(host, new HostReport(
        T0,
        ImmutableDictionary<string, CopyReport>.Empty,
        vms.ToImmutableDictionary(v => v.Vm, v => new VmReport(v.State)))) { At = T0 };

    private static LocalView Here(ClusterState state, params (string Vm, VmState State)[] vms) => new(
        Disks.ToDictionary(v => v, v => new LocalCopy(state.Volume(v)!.Id, CopyRole.Primary, DiskState.UpToDate, 1, true, state.Volume(v)!.Protocol, LocalPlan.PeersOf("a", state, state.Volume(v)!))),
        vms.ToDictionary(v => v.Vm, v => new LocalVm(state.Vm(v.Vm)!.Spec, v.State, true)));

    [Fact]
    public void A_vm_starts_only_once_what_it_depends_on_runs_and_answered_its_health_check()
    {
        var state = DbAndApp();
        var steps = LocalPlan.Steps("a", state, Here(state, ("db", VmState.Stopped), ("app", VmState.Stopped)));
        Assert.Contains(new LocalStep.StartVm("db"), steps);
        Assert.Contains(steps, s => s is LocalStep.Blocked { Name: "app", Reason: var r } && r.Contains("waiting for VM 'db' to be healthy (it is stopped on a)", StringComparison.Ordinal));

        state = state.Apply(Runs("a", ("db", VmState.Running), ("app", VmState.Stopped)));
        Assert.Contains("has not answered its health check yet", ResourcePlan.Waiting(state, state.Vm("app")!));
        Assert.DoesNotContain(new LocalStep.StartVm("app"), LocalPlan.Steps("a", state, Here(state, ("db", VmState.Running), ("app", VmState.Stopped))));

        state = state.Apply(new VmHealthy("db", "a", "db answered") { At = T0 });
        Assert.Contains(new LocalStep.StartVm("app"), LocalPlan.Steps("a", state, Here(state, ("db", VmState.Running), ("app", VmState.Stopped))));
    }

    [Fact]
    public void After_a_failure_the_vms_come_back_in_their_order_on_the_survivor()
    {
        var state = DbAndApp().Apply(Runs("a", ("db", VmState.Running), ("app", VmState.Running)), new VmHealthy("db", "a", "ok") { At = T0 }, new FenceHost("a", "lease expired") { At = T0 });
        foreach (var command in ResourcePlan.Next(state))
        {
            state = state.Apply(command with { At = T0 });
        }

        foreach (var command in ResourcePlan.Next(state))
        {
            state = state.Apply(command with { At = T0 });
        }

        Assert.Equal(("b", "b"), (state.Vm("db")!.Host, state.Vm("app")!.Host));
        var onB = new LocalView(
            Disks.ToDictionary(v => v, v => new LocalCopy(state.Volume(v)!.Id, CopyRole.Primary, DiskState.UpToDate, 2, true, state.Volume(v)!.Protocol, LocalPlan.PeersOf("b", state, state.Volume(v)!))),
            new Dictionary<string, LocalVm> { ["db"] = new(state.Vm("db")!.Spec, VmState.Stopped, true), ["app"] = new(state.Vm("app")!.Spec, VmState.Stopped, true) });
        var steps = LocalPlan.Steps("b", state, onB);
        Assert.Contains(new LocalStep.StartVm("db"), steps);
        Assert.DoesNotContain(new LocalStep.StartVm("app"), steps);
    }

    [Fact]
    public void A_vm_that_waits_longer_than_its_timeout_is_given_up_with_what_it_waited_for_but_a_running_one_never()
    {
        var state = DbAndApp(TimeSpan.FromSeconds(30)).Apply(Runs("a", ("db", VmState.Crashed), ("app", VmState.Stopped)));
        Assert.DoesNotContain(ResourcePlan.Next(state, T0.AddSeconds(29)), c => c is GiveUpVm);
        var gaveUp = Assert.Single(ResourcePlan.Next(state, T0.AddSeconds(31)).OfType<GiveUpVm>());
        Assert.Equal("app", gaveUp.Name);
        Assert.Contains("not healthy within 30 s: waiting for VM 'db' to be healthy (it is crashed on a)", gaveUp.Reason);

        var running = state.Apply(Runs("a", ("db", VmState.Crashed), ("app", VmState.Running)));
        Assert.DoesNotContain(ResourcePlan.Next(running, T0.AddHours(1)), c => c is GiveUpVm { Name: "app" });
    }

    [Fact]
    public void Dependencies_must_exist_when_defined_and_cannot_be_deleted_from_under_a_dependent()
    {
        var state = ThreeHosts().Apply(Volume("v1", "a"));
        Assert.Contains("does not exist", state.Refused(new DefineVm(new VmSpec { Name = "app" }, Rules: new VmRules(DependsOn: ["db"])) { At = T0 }).Message);
        Assert.Contains("dependency timeout", state.Refused(new DefineVm(new VmSpec { Name = "app" }, Rules: new VmRules(DependencyTimeout: TimeSpan.Zero)) { At = T0 }).Message);

        state = state.Apply(new DefineVm(new VmSpec { Name = "db" }) { At = T0 }, new DefineVm(new VmSpec { Name = "app" }, Rules: new VmRules(DependsOn: ["db"])) { At = T0 });
        Assert.Contains("depends on VM 'db'", state.Refused(new DeleteVm("db") { At = T0 }).Message);
        Assert.Null(state.Apply(new DeleteVm("app") { At = T0 }, new DeleteVm("db") { At = T0 }).Vm("db"));
    }
}
