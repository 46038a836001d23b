using Ferry.Cluster.State;
using static Ferry.Tests.Cluster.ClusterFixtures;

namespace Ferry.Tests.Cluster;

public class ClusterStateMachineTests
{
    [Fact]
    public void A_cluster_is_initialized_once_with_its_first_host()
    {
        var state = ClusterState.Empty.Apply(new InitializeCluster(Guid.NewGuid(), "lab", "CA", Host("a")) { At = T0 });
        Assert.Equal("lab", state.Cluster!.Name);
        Assert.Equal(["a"], state.Hosts.Keys);
        var again = state.Refused(new InitializeCluster(Guid.NewGuid(), "other", "CA", Host("b")));
        Assert.Contains("already initialized as 'lab'", again.Message);
    }

    [Fact]
    public void Nothing_joins_before_the_cluster_exists() =>
        Assert.Contains("not part of a cluster", ClusterState.Empty.Refused(new IssueJoinToken("t", "s", T0.AddHours(1)) { At = T0 }).Message);

    [Fact]
    public void A_join_token_works_once_before_it_expires_and_only_with_its_secret()
    {
        var state = ThreeHosts().Apply(new IssueJoinToken("t3", "s3", T0.AddMinutes(10)) { At = T0 });
        Assert.Contains("unknown join token", state.Refused(new JoinHost("nope", "s3", Host("d")) { At = T0 }).Message);
        Assert.Contains("secret is wrong", state.Refused(new JoinHost("t3", "wrong", Host("d")) { At = T0 }).Message);
        Assert.Contains("expired", state.Refused(new JoinHost("t3", "s3", Host("d")) { At = T0.AddMinutes(11) }).Message);
        Assert.Contains("already used by host 'b'", state.Refused(new JoinHost("t1", "s1", Host("d")) { At = T0 }).Message);

        state = state.Apply(new JoinHost("t3", "s3", Host("d")) { At = T0.AddMinutes(5) });
        Assert.Equal("d", state.Tokens["t3"].UsedBy);
        Assert.Equal(4, state.Hosts.Count);
    }

    [Fact]
    public void A_host_name_or_address_already_taken_is_refused()
    {
        var state = ThreeHosts().Apply(new IssueJoinToken("t3", "s3", T0.AddHours(1)) { At = T0 });
        Assert.Contains("already a member", state.Refused(new JoinHost("t3", "s3", Host("b")) { At = T0 }).Message);
        Assert.Contains("already uses the address", state.Refused(new JoinHost("t3", "s3", Host("d") with { ConsensusAddress = "b:7470" }) { At = T0 }).Message);
        Assert.Contains("invalid host name", state.Refused(new JoinHost("t3", "s3", Host("D!")) { At = T0 }).Message);
    }

    [Fact]
    public void Compacting_the_log_changes_nothing_and_needs_a_member_host()
    {
        var state = ThreeHosts();
        var (after, outcome) = ClusterStateMachine.Apply(state, new CompactLog("b") { At = T0 });
        Assert.True(outcome.IsOk);
        Assert.Equal(state.Hosts, after.Hosts);
        Assert.Contains("not a member", state.Refused(new CompactLog("zz") { At = T0 }).Message);
    }

    [Fact]
    public void Expired_tokens_are_dropped_when_the_next_one_is_issued()
    {
        var state = ThreeHosts().Apply(new IssueJoinToken("t3", "s3", T0.AddHours(5)) { At = T0.AddHours(2) });
        Assert.Equal(["t3"], state.Tokens.Keys);
    }

    [Fact]
    public void A_host_with_VMs_or_copies_is_removed_only_by_force_which_reports_what_it_dropped()
    {
        var state = ThreeHosts().Apply(Volume("disk", "a", "b"), Vm("web", "disk"), new PlaceVm("web", "b"), new PromoteCopy("disk", "b"));
        Assert.Contains("still has VMs [web] and volume copies [disk]", state.Refused(new RemoveHost("b")).Message);

        var (forced, outcome) = ClusterStateMachine.Apply(state, new RemoveHost("b", Force: true));
        Assert.Contains("VMs unplaced: [web]; copies dropped: [disk]", outcome.Message);
        Assert.Null(forced.Vm("web")!.Host);
        Assert.Equal(["a"], forced.Volume("disk")!.Hosts);
        Assert.Null(forced.Volume("disk")!.Primary);
        Assert.Equal(1UL, forced.Volume("disk")!.Epoch);
    }

    [Fact]
    public void The_last_host_is_not_removed() =>
        Assert.Contains("last host", ClusterState.Empty.Apply(new InitializeCluster(Guid.NewGuid(), "lab", "CA", Host("a"))).Refused(new RemoveHost("a")).Message);

    [Fact]
    public void Every_promotion_takes_the_next_epoch()
    {
        var state = ThreeHosts().Apply(Volume("disk", "a", "b"));
        var (promoted, first) = ClusterStateMachine.Apply(state, new PromoteCopy("disk", "a"));
        var (again, second) = ClusterStateMachine.Apply(promoted, new PromoteCopy("disk", "b"));
        Assert.Equal(1UL, first.Epoch);
        Assert.Equal(2UL, second.Epoch);
        Assert.Equal("b", again.Volume("disk")!.Primary);
    }

    [Fact]
    public void A_witness_holds_no_copies_and_runs_no_VMs()
    {
        var state = ThreeHosts().Apply(new IssueJoinToken("t3", "s3", T0.AddHours(1)) { At = T0 }, new JoinHost("t3", "s3", Host("w", HostRole.Witness)) { At = T0 }, Vm("web"));
        Assert.Contains("witness", state.Refused(Volume("disk", "a", "w")).Message);
        Assert.Contains("witness", state.Refused(new PlaceVm("web", "w")).Message);
    }

    [Fact]
    public void An_outdated_copy_is_promoted_only_by_force_which_reports_the_data_at_risk()
    {
        var state = ThreeHosts().Apply(Volume("disk", "a", "b"), new PromoteCopy("disk", "a"), new OutdateCopy("disk", "b", "a", 1) { At = T0 });
        Assert.Contains("is Outdated (marked by a at epoch 1", state.Refused(new PromoteCopy("disk", "b")).Message);

        var (forced, outcome) = ClusterStateMachine.Apply(state, new PromoteCopy("disk", "b", Force: true));
        Assert.Contains("forced: writes acknowledged by a after epoch 1", outcome.Message);
        Assert.Empty(forced.Volume("disk")!.Outdated);
    }

    [Fact]
    public void A_stale_primary_cannot_outdate_a_peer()
    {
        var state = ThreeHosts().Apply(Volume("disk", "a", "b"), new PromoteCopy("disk", "a"), new PromoteCopy("disk", "b"));
        Assert.Contains("stale", state.Refused(new OutdateCopy("disk", "b", "a", 1)).Message);
    }

    [Fact]
    public void Of_two_primaries_that_lost_each_other_only_the_first_to_ask_goes_on()
    {
        var state = ThreeHosts().Apply(Volume("disk", "a", "b"), new PromoteCopy("disk", "a"), new OutdateCopy("disk", "b", "a", 1));
        Assert.Contains("marked Outdated by a", state.Refused(new OutdateCopy("disk", "a", "b", 1)).Message);
    }

    [Fact]
    public void A_volume_in_use_by_a_VM_is_not_deleted_and_a_running_VM_is_not_deleted()
    {
        var state = ThreeHosts().Apply(Volume("disk", "a", "b"), Vm("web", "disk"), new SetVmDesiredState("web", VmDesiredState.Running));
        Assert.Contains("disk of VM 'web'", state.Refused(new DeleteVolume("disk")).Message);
        Assert.Contains("stop it first", state.Refused(new DeleteVm("web")).Message);
        state = state.Apply(new SetVmDesiredState("web", VmDesiredState.Stopped), new DeleteVm("web"), new DeleteVolume("disk"));
        Assert.Empty(state.Vms);
        Assert.Empty(state.Volumes);
    }

    [Fact]
    public void Bad_volume_declarations_are_refused_with_the_reason()
    {
        var state = ThreeHosts();
        Assert.Contains("1 to 3 different hosts", state.Refused(Volume("disk", "a", "a")).Message);
        Assert.Contains("1 to 3 different hosts", state.Refused(Volume("disk")).Message);
        Assert.Contains("no host named 'x'", state.Refused(Volume("disk", "a", "x")).Message);
        Assert.Contains("multiple of 4096", state.Refused(Volume("disk", "a") with { SizeBytes = 1000 }).Message);
        Assert.Contains("uses volume 'none'", state.Refused(Vm("web", "none")).Message);
    }

    [Fact]
    public void A_repeated_command_returns_its_first_outcome_and_changes_nothing()
    {
        var state = ThreeHosts().Apply(Volume("disk", "a", "b"));
        var promote = new PromoteCopy("disk", "a");
        var (once, first) = ClusterStateMachine.Apply(state, promote);
        var (twice, second) = ClusterStateMachine.Apply(once, promote);
        Assert.Same(once, twice);
        Assert.Equal(first, second);
        Assert.Equal(1UL, twice.Volume("disk")!.Epoch);
    }

    [Fact]
    public void Every_command_leaves_an_event_with_its_subjects_and_the_log_is_bounded()
    {
        var state = ThreeHosts().Apply(Volume("disk", "a", "b"));
        Assert.Equal(("create-volume", "disk"), (state.Events[^1].Kind, state.Events[^1].Volume));
        state = ClusterStateMachine.Apply(state, new PromoteCopy("disk", "x")).State;
        var refused = state.Events[^1];
        Assert.Equal(("promote-copy", "disk", "x"), (refused.Kind, refused.Volume, refused.Host));
        Assert.StartsWith("refused: volume 'disk' has no copy on host 'x'", refused.Message);

        for (var i = 0; i < ClusterState.EventCapacity + 10; i++)
        {
            state = ClusterStateMachine.Apply(state, new SetVmDesiredState("none", VmDesiredState.Running)).State;
        }

        Assert.Equal(ClusterState.EventCapacity, state.Events.Count);
        Assert.StartsWith("refused: no VM named", state.Events[^1].Message);
        Assert.Equal(state.NextEventSequence - 1, state.Events[^1].Sequence);
    }

    [Fact]
    public void A_fenced_host_loses_its_vms_and_primaries_takes_none_and_is_let_back_only_once_it_saw_its_fence()
    {
        var state = ThreeHosts().Apply(Volume("disk", "a", "b"), Vm("web", "disk"), new PlaceVm("web", "a") { At = T0 }, new PromoteCopy("disk", "a") { At = T0 });
        var (fenced, outcome) = ClusterStateMachine.Apply(state, new FenceHost("a", "lease expired") { At = T0.AddMinutes(3) });
        Assert.Contains("VMs to recover: [web]; primaries given up: [disk]", outcome.Message);
        Assert.Equal(new HostFence(T0.AddMinutes(3), "lease expired"), fenced.Host("a")!.Fenced);
        Assert.Null(fenced.Vm("web")!.Host);
        Assert.Equal((null, 1UL), (fenced.Volume("disk")!.Primary, fenced.Volume("disk")!.Epoch));

        Assert.Contains("already fenced", fenced.Refused(new FenceHost("a", "again")).Message);
        Assert.Contains("is fenced since", fenced.Refused(new PlaceVm("web", "a")).Message);
        Assert.Contains("is fenced since", fenced.Refused(new PromoteCopy("disk", "a")).Message);
        Assert.Contains("witness", ThreeHosts().Apply(new IssueJoinToken("t3", "s3", T0.AddHours(1)) { At = T0 }, new JoinHost("t3", "s3", Host("w", HostRole.Witness)) { At = T0 })
            .Refused(new FenceHost("w", "lease expired")).Message);

        // The other copy takes over at the next epoch; the fenced host comes back only with its own fence's time.
        fenced = fenced.Apply(new PlaceVm("web", "b") { At = T0 }, new PromoteCopy("disk", "b") { At = T0 });
        Assert.Equal(2UL, fenced.Volume("disk")!.Epoch);
        Assert.Contains("has not seen its fence", fenced.Refused(new UnfenceHost("a", T0)).Message);
        var back = fenced.Apply(new UnfenceHost("a", T0.AddMinutes(3)) { At = T0.AddMinutes(4) });
        Assert.Null(back.Host("a")!.Fenced);
        Assert.Equal(("b", "b"), (back.Vm("web")!.Host, back.Volume("disk")!.Primary));
        Assert.Contains("not fenced", back.Refused(new UnfenceHost("a", T0.AddMinutes(3))).Message);
    }

    [Fact]
    public void A_recorded_event_changes_nothing_but_the_timeline_and_needs_a_plain_kind_and_a_message()
    {
        var state = ThreeHosts();
        var (next, outcome) = ClusterStateMachine.Apply(state, new RecordEvent("vm-started", "VM web started on a", Host: "a", Vm: "web") { At = T0 });
        Assert.True(outcome.IsOk);
        Assert.Equal(Content(state), Content(next));
        Assert.Equal(("vm-started", "VM web started on a", "a", "web"), (next.Events[^1].Kind, next.Events[^1].Message, next.Events[^1].Host, next.Events[^1].Vm));

        Assert.Contains("invalid event kind", state.Refused(new RecordEvent("Fence Host", "x")).Message);
        Assert.Contains("1 to 1000 characters", state.Refused(new RecordEvent("vm-started", "")).Message);
    }

    [Fact]
    public void A_member_gets_a_fence_agent_with_checked_parameters_and_loses_it_again()
    {
        var ipmi = new FenceAgent(["/usr/sbin/fence_ipmilan"], System.Collections.Immutable.ImmutableSortedDictionary<string, string>.Empty.Add("ip", "10.0.0.5").Add("password", "x"));
        var state = ThreeHosts().Apply(new SetFenceAgent("a", ipmi) { At = T0 });
        Assert.Equal(ipmi, state.Host("a")!.FenceAgent);
        Assert.Null(state.Apply(new SetFenceAgent("a", null) { At = T0 }).Host("a")!.FenceAgent);

        Assert.Contains("absolute path", state.Refused(new SetFenceAgent("b", ipmi with { Command = ["fence_ipmilan"] })).Message);
        Assert.Contains("action is Ferry's", state.Refused(new SetFenceAgent("b", ipmi with { Parameters = ipmi.Parameters.Add("action", "on") })).Message);
        Assert.Contains("one line", state.Refused(new SetFenceAgent("b", ipmi with { Parameters = ipmi.Parameters.SetItem("ip", "1\naction=on") })).Message);
        Assert.Contains("1 to 600 seconds", state.Refused(new SetFenceAgent("b", ipmi with { TimeoutSeconds = 0 })).Message);
        Assert.Contains("no host named", state.Refused(new SetFenceAgent("z", ipmi)).Message);
        Assert.True(FenceAgent.IsSecret("password") && !FenceAgent.IsSecret("ip"));
    }

    [Fact]
    public void Restarts_and_moves_of_a_crashed_vm_stay_within_its_limits()
    {
        var state = ThreeHosts().Apply(Volume("disk", "a", "b"), new DefineVm(Vm("web", "disk").Spec, new RestartLimits(MaxRestarts: 1, MaxRelocations: 0)) { At = T0 },
            new SetVmDesiredState("web", VmDesiredState.Running) { At = T0 }, new PlaceVm("web", "a") { At = T0 });
        Assert.Contains("not meant to run on b", state.Refused(new RestartVm("web", "b")).Message);
        state = state.Apply(new RestartVm("web", "a") { At = T0 });
        Assert.Contains("restarted 1 times on a already", state.Refused(new RestartVm("web", "a")).Message);
        Assert.Contains("moved 0 times already", state.Refused(new RelocateVm("web", "a")).Message);
        Assert.Contains("0 to 100", ThreeHosts().Refused(new DefineVm(Vm("x").Spec, new RestartLimits(-1))).Message);
    }
}
