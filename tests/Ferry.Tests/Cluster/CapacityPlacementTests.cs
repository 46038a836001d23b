using Ferry.Cluster.Reconcile;
using Ferry.Cluster.State;
using Ferry.Hypervisor;
using static Ferry.Tests.Cluster.ClusterFixtures;

namespace Ferry.Tests.Cluster;

/// <summary>The cluster placing through Ferry.Placement: reported capacity, N+1 admission, twins, preferences, maintenance, verify.</summary>
public class CapacityPlacementTests
{
    /// <summary>Hosts a, b, c with 4 GiB each, 1 GiB of it reserved; volumes v1..v6 on all three hosts.</summary>
    private static ClusterState Sized(long memoryMiB = 4096)
    {
        var state = ThreeHosts();
        foreach (var host in new[] { "a", "b", "c" })
        {
            state = state.Apply(new ReportHost(host, HostReport.Empty with { Resources = new HostResources(memoryMiB, 4, 1024) }) { At = T0 });
        }

        return state.Apply([.. Enumerable.Range(1, 6).Select(i => Volume($"v{i}", "a", "b", "c"))]);
    }

    private static DefineVm BigVm(string name, string volume, long memoryMiB, string? group = null, params string[] prefer) =>
        new(new VmSpec { Name = name, MemoryMiB = memoryMiB, Disks = [DiskSpec.ForVolume(volume)] }, Rules: new VmRules(group, prefer.Length == 0 ? null : prefer)) { At = T0 };

    private static ClusterState Start(ClusterState state, string vm)
    {
        state = state.Apply(new SetVmDesiredState(vm, VmDesiredState.Running) { At = T0 });
        var place = Assert.IsType<PlaceVm>(ResourcePlan.Next(state).First(c => c is PlaceVm p && p.Name == vm));
        return state.Apply(place with { At = T0 });
    }

    [Fact]
    public void A_start_that_would_break_n_plus_one_is_refused_naming_the_host_and_the_vms_it_would_strand()
    {
        // 3 GiB per host for VMs, of which Z = 3 GiB x 2/3 = 2 GiB each may be used: four 1.5 GiB VMs (6 GiB), not five.
        var state = Sized().Apply([.. Enumerable.Range(1, 5).Select(i => BigVm($"m{i}", $"v{i}", 1536))]);
        state = Start(Start(Start(Start(state, "m1"), "m2"), "m3"), "m4");

        var refused = state.Refused(new SetVmDesiredState("m5", VmDesiredState.Running) { At = T0 });
        Assert.Contains("would break N+1", refused.Message);
        Assert.Contains("could not restart elsewhere", refused.Message);
        Assert.DoesNotContain(ClusterVerify.Risks(state), r => r.Kind == "n-plus-one");
    }

    [Fact]
    public void With_n_plus_one_off_a_start_needs_only_the_room_and_verify_warns_instead()
    {
        var state = Sized().Apply([.. Enumerable.Range(1, 5).Select(i => BigVm($"m{i}", $"v{i}", 1536))]);
        state = Start(Start(Start(Start(state, "m1"), "m2"), "m3"), "m4").Apply(new SetClusterSettings(NPlusOne: false) { At = T0 });
        state = Start(state, "m5");
        Assert.Contains(ClusterVerify.Risks(state), r => r.Kind == "n-plus-one" && r.Severity == RiskSeverity.Warning);
        Assert.True(state.Apply(new SetClusterSettings(NPlusOne: null) { At = T0 }).Cluster!.NPlusOneOff);
        Assert.True(state.Apply(new SetClusterSettings(NPlusOne: true) { At = T0 }).Cluster!.NPlusOne);
    }

    [Fact]
    public void A_failed_hosts_vms_are_recovered_within_capacity_even_when_that_breaks_n_plus_one()
    {
        var state = Start(Start(Sized().Apply(BigVm("m1", "v1", 2048), BigVm("m2", "v2", 2048)), "m1"), "m2");
        var failed = state.Vm("m1")!.Host!;
        state = state.Apply(new FenceHost(failed, "lease expired") { At = T0 });
        var place = Assert.Single(ResourcePlan.Next(state).OfType<PlaceVm>());
        Assert.NotEqual(failed, place.Host);

        // Two hosts left: N+1 is gone, and verify says so.
        state = state.Apply(place with { At = T0 });
        Assert.Contains(ClusterVerify.Risks(state), r => r.Kind == "n-plus-one" && r.Severity == RiskSeverity.Error);
        Assert.Contains(ClusterVerify.Risks(state), r => r.Kind == "fenced" && r.Hosts.Contains(failed));
    }

    [Fact]
    public void Nothing_is_placed_where_it_does_not_fit()
    {
        var state = Start(Sized().Apply(BigVm("m1", "v1", 2560), BigVm("m2", "v2", 2560)), "m1");
        state = Start(state, "m2");
        Assert.NotEqual(state.Vm("m1")!.Host, state.Vm("m2")!.Host);

        // 2.5 GiB VMs on 3 GiB of room: with m1 and m2 placed, a third has a host but breaks N+1; without N+1 it still may not share a host.
        var third = Sized().Apply(BigVm("m1", "v1", 2560), BigVm("m2", "v2", 2560), BigVm("m3", "v3", 2560), new SetMaintenance("c", true) { At = T0 });
        third = Start(third, "m1");
        Assert.Contains("would break N+1", third.Refused(new SetVmDesiredState("m2", VmDesiredState.Running) { At = T0 }).Message);
    }

    [Fact]
    public void Twins_are_kept_apart_and_a_fourth_twin_on_three_hosts_is_refused()
    {
        var state = Sized(memoryMiB: 65536).Apply(BigVm("w1", "v1", 256, "web"), BigVm("w2", "v2", 256, "web"), BigVm("w3", "v3", 256, "web"), BigVm("w4", "v4", 256, "web"));
        state = Start(Start(Start(state, "w1"), "w2"), "w3");
        Assert.Equal(3, state.Vms.Values.Where(v => v.Desired == VmDesiredState.Running).Select(v => v.Host).Distinct().Count());
        Assert.Contains("twins", state.Refused(new SetVmDesiredState("w4", VmDesiredState.Running) { At = T0 }).Message);

        // A failed host's twin runs next to another rather than not at all; verify then names the pair.
        var failed = state.Vm("w1")!.Host!;
        state = state.Apply(new FenceHost(failed, "lease expired") { At = T0 });
        state = state.Apply(Assert.Single(ResourcePlan.Next(state).OfType<PlaceVm>()) with { At = T0 });
        Assert.NotEqual(failed, state.Vm("w1")!.Host);
        Assert.Contains(ClusterVerify.Risks(state), r => r.Kind == "anti-affinity" && r.Vms.Contains("w1"));
    }

    [Fact]
    public void A_vm_goes_to_the_host_it_prefers_when_that_host_can_take_it()
    {
        var state = Start(Sized().Apply(BigVm("m1", "v1", 256, null, "c", "b")), "m1");
        Assert.Equal("c", state.Vm("m1")!.Host);

        var busy = Start(Sized().Apply(BigVm("m1", "v1", 256, null, "c", "b"), new SetMaintenance("c", true) { At = T0 }), "m1");
        Assert.Equal("b", busy.Vm("m1")!.Host);
    }

    [Fact]
    public void A_host_that_has_not_reported_its_resources_yet_is_tried_after_those_that_have()
    {
        var state = ThreeHosts().Apply(Volume("v1", "a", "b", "c"), BigVm("m1", "v1", 256));
        state = state.Apply(new ReportHost("c", HostReport.Empty with { Resources = new HostResources(4096, 4, 1024) }) { At = T0 });
        Assert.Equal("c", Start(state, "m1").Vm("m1")!.Host);
    }

    [Fact]
    public void A_host_in_maintenance_takes_no_vm_and_a_witness_cannot_be_drained()
    {
        var state = Sized().Apply(BigVm("m1", "v1", 256, null, "a"), new SetMaintenance("a", true) { At = T0 });
        Assert.NotEqual("a", Start(state, "m1").Vm("m1")!.Host);
        Assert.Equal(Content(state), Content(state.Apply(new SetMaintenance("a", true) { At = T0 })));
        Assert.Contains(ClusterVerify.Risks(state), r => r.Kind == "maintenance" && r.Hosts.SequenceEqual(["a"]));
        Assert.Null(state.Apply(new SetMaintenance("a", false) { At = T0 }).Host("a")!.Maintenance);

        var witnessed = state.Apply(new IssueJoinToken("t9", "s9", T0.AddHours(1)) { At = T0 }, new JoinHost("t9", "s9", Host("w", HostRole.Witness)) { At = T0 });
        Assert.Contains("witness", witnessed.Refused(new SetMaintenance("w", true) { At = T0 }).Message);
    }

    [Fact]
    public void A_vm_whose_disk_has_one_copy_does_not_count_against_n_plus_one_and_verify_names_the_risk()
    {
        var state = Sized().Apply(Volume("solo", "a"), BigVm("m1", "solo", 2560));
        state = Start(state, "m1");
        Assert.Equal("a", state.Vm("m1")!.Host);
        var risks = ClusterVerify.Risks(state);
        Assert.DoesNotContain(risks, r => r.Kind == "n-plus-one");
        Assert.Contains(risks, r => r.Kind == "single-copy" && r.Vms.SequenceEqual(["m1"]));
    }

    [Fact]
    public void Verify_reports_twins_on_one_host_and_hosts_that_never_reported()
    {
        var state = ThreeHosts().Apply(Volume("v1", "a", "b"), Volume("v2", "a", "b"), BigVm("w1", "v1", 256, "web"), BigVm("w2", "v2", 256, "web"));
        state = state.Apply(new PlaceVm("w1", "a") { At = T0 }, new PlaceVm("w2", "a") { At = T0 });
        state = state with { Vms = state.Vms.SetItems(state.Vms.Select(p => KeyValuePair.Create(p.Key, p.Value with { Desired = VmDesiredState.Running }))) };
        var risks = ClusterVerify.Risks(state);
        Assert.Contains(risks, r => r.Kind == "anti-affinity" && r.Hosts.SequenceEqual(["a"]) && r.Vms.SequenceEqual(["w1", "w2"]));
        Assert.Equal(["a", "b", "c"], risks.Where(r => r.Kind == "no-capacity").SelectMany(r => r.Hosts));
    }

    [Fact]
    public void Invalid_rules_are_refused()
    {
        Assert.Contains("anti-affinity", ThreeHosts().Apply(Volume("v1", "a")).Refused(BigVm("m1", "v1", 256, "bad group")).Message);
        Assert.Contains("preferred host", ThreeHosts().Apply(Volume("v1", "a")).Refused(BigVm("m1", "v1", 256, null, "no/such")).Message);
    }
}
