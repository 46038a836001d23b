using Xunit.Abstractions;
using System.Diagnostics;
using System.Text.Json;
using Ferry.IntegrationTests.Cluster;
using Ferry.IntegrationTests.Lab;

namespace Ferry.IntegrationTests.Failover;

/// <summary>
/// A host fails under a running guest that counts on its replicated disk: the cluster fences the host
/// (its lease ran out) and runs the VM again on the host with the other copy, at a new epoch. The
/// counter never goes back (no acknowledged write lost) and no two QEMU processes of the VM ever run
/// at once. The failed host comes back as a secondary without the VM.
/// </summary>
public class FailoverTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_killed_host_that_led_the_cluster_has_its_vm_run_again_on_the_survivor_with_no_write_lost_and_never_twice()
    {
        await using var lab = await TestLab.UpAsync(3);
        var (h1, h2) = (lab["h1"], lab["h2"]);
        var last = await RunGuestOnH1Async(lab);
        Assert.Equal("h1", (await h1.FerryJsonAsync("cluster", "status")).GetProperty("leader").GetString());

        await using (var watch = InstanceWatch.Start(lab, "g"))
        {
            last = Math.Max(last, await LabGuest.CounterAsync(h1));
            var killed = Stopwatch.StartNew();
            await lab.KillAsync("h1");

            var after = await RunsOnAsync(h2, "h2");
            output.WriteLine($"the VM runs on h2 {killed.Elapsed.TotalSeconds:0.0} s after the kill");
            Assert.True(await LabGuest.CounterAsync(h2) >= last, $"the counter went back: it was {last} on h1");
            Assert.Equal(2UL, after.GetProperty("epoch").GetUInt64());

            // h1's last report still says primary: the view says its host is fenced, so that no one takes it for now.
            var onH1 = after.GetProperty("copies").EnumerateArray().Single(c => c.GetProperty("host").GetString() == "h1");
            Assert.True(onH1.TryGetProperty("hostFenced", out var fenced) && fenced.ValueKind == JsonValueKind.Object, $"h1's copy should say its host is fenced: {onH1}");
            Assert.Empty(watch.Twice);
        }

        // Back from the dead, h1 is let in again once it has seen its fence, and follows as a secondary.
        await lab.StartAsync("h1");
        await BackAsSecondaryAsync(lab, h2);
        await AssertRecoveryEventsAsync(h2);
    }

    [Fact]
    public async Task A_host_cut_off_kills_its_vm_before_its_lease_can_expire_and_the_vm_runs_on_the_other_side_with_no_write_lost()
    {
        await using var lab = await TestLab.UpAsync(3);
        var (h1, h2) = (lab["h1"], lab["h2"]);
        var last = await RunGuestOnH1Async(lab);
        var qemu = (await h1.FerryJsonAsync("vm", "show", "g")).GetProperty("pid").GetInt32();

        await using (var watch = InstanceWatch.Start(lab, "g"))
        {
            last = Math.Max(last, await LabGuest.CounterAsync(h1));
            await lab.PartitionAsync("h1");
            var cut = Stopwatch.StartNew();

            // Cut off, h1 cannot renew its lease: within the lease (3 s), before the leader may judge it
            // failed (3 s + 1 s margin), its QEMU is gone and its copy secondary.
            await GoneBeforeJudgedAsync(qemu, cut, "h1 to kill its VM");
            await Wait.UntilAsync(() => Task.FromResult(lab.Log("h1", line => line.Contains("lease lost", StringComparison.Ordinal)).Contains("lease lost", StringComparison.Ordinal)),
                TimeSpan.FromSeconds(10), "h1 to log that it lost its lease");

            await RunsOnAsync(h2, "h2");
            output.WriteLine($"the VM runs on h2 {cut.Elapsed.TotalSeconds:0.0} s after the cut");
            Assert.True(await LabGuest.CounterAsync(h2) >= last, $"the counter went back: it was {last} on h1");
            Assert.Equal("secondary", (await LabGuest.LocalAsync(h1, "volumes"))[0].GetProperty("copy").GetProperty("role").GetString());

            await lab.HealAsync();
            await BackAsSecondaryAsync(lab, h2);
            Assert.Empty(watch.Twice);
        }

        await AssertRecoveryEventsAsync(h2);
    }

    [Fact]
    public async Task A_killed_agent_leaves_its_vm_to_the_watchdog_which_kills_it_before_the_cluster_runs_it_on_the_survivor()
    {
        await using var lab = await TestLab.UpAsync(3);
        var (h1, h2) = (lab["h1"], lab["h2"]);
        var last = await RunGuestOnH1Async(lab);
        var qemu = (await h1.FerryJsonAsync("vm", "show", "g")).GetProperty("pid").GetInt32();

        await using (var watch = InstanceWatch.Start(lab, "g"))
        {
            last = Math.Max(last, await LabGuest.CounterAsync(h1));
            await lab.RunAsync("kill-agent", "h1");
            var killed = Stopwatch.StartNew();

            // QEMU outlives the agent, but not its lease: the watchdog kills it before the leader may judge h1 failed.
            await GoneBeforeJudgedAsync(qemu, killed, "the watchdog to kill the VM");
            Assert.Contains("killed VM g", await File.ReadAllTextAsync(Path.Combine(h1.DataDirectory, "watchdog.log")));

            await RunsOnAsync(h2, "h2");
            output.WriteLine($"the VM runs on h2 {killed.Elapsed.TotalSeconds:0.0} s after the agent was killed");
            Assert.True(await LabGuest.CounterAsync(h2) >= last, $"the counter went back: it was {last} on h1");
            Assert.Empty(watch.Twice);
        }

        await lab.StartAsync("h1");
        await BackAsSecondaryAsync(lab, h2);
        await AssertRecoveryEventsAsync(h2);
    }

    [Fact]
    public async Task A_host_paused_past_its_lease_is_switched_off_by_its_fence_agent_before_its_vm_runs_on_the_survivor()
    {
        await using var lab = await TestLab.UpAsync(3, fence: true);
        var (h1, h2) = (lab["h1"], lab["h2"]);
        var last = await RunGuestOnH1Async(lab);
        Assert.Contains("fence-agent", string.Join(' ', (await h2.FerryJsonAsync("cluster", "status")).GetProperty("hosts")[0].GetProperty("fenceAgent").GetProperty("command").EnumerateArray().Select(a => a.GetString())));

        await using (var watch = InstanceWatch.Start(lab, "g"))
        {
            last = Math.Max(last, await LabGuest.CounterAsync(h1));

            // Hung, h1 cannot fence itself; were it to wake after its lease, its guest would run on for a
            // moment beside the recovered one. Its fence agent kills it before the VM runs elsewhere.
            await lab.PauseAsync("h1");
            var paused = Stopwatch.StartNew();
            await RunsOnAsync(h2, "h2");
            output.WriteLine($"the VM runs on h2 {paused.Elapsed.TotalSeconds:0.0} s after h1 was paused");
            Assert.Equal("down", (await lab.StatusAsync()).GetProperty("hosts")[0].GetProperty("state").GetString());
            Assert.True(await LabGuest.CounterAsync(h2) >= last, $"the counter went back: it was {last} on h1");

            await lab.ResumeAsync("h1");
            Assert.Empty(watch.Twice);
        }

        var fenced = (await h2.FerryJsonAsync("cluster", "events")).EnumerateArray().Single(e => e.GetProperty("kind").GetString() == "fence-host");
        Assert.Contains("switched off by its fence agent", fenced.GetProperty("message").GetString());
        await lab.StartAsync("h1");
        await BackAsSecondaryAsync(lab, h2);
    }

    [Fact]
    public async Task Two_hosts_and_a_witness_recover_a_vm_when_either_host_dies()
    {
        await using var lab = await TestLab.UpAsync(3, members: 2);
        var (h1, h2) = (lab["h1"], lab["h2"]);
        await lab["h3"].FerryJsonAsync("node", "join", h1.PeerAddress, "--token", await h1.TokenAsync(), "--witness");
        var last = await RunGuestOnH1Async(lab);

        await using (var watch = InstanceWatch.Start(lab, "g"))
        {
            last = Math.Max(last, await LabGuest.CounterAsync(h1));
            await lab.KillAsync("h1");
            await RunsOnAsync(h2, "h2");
            Assert.True(await LabGuest.CounterAsync(h2) >= last, $"the counter went back: it was {last} on h1");
            Assert.Empty(watch.Twice);
        }
    }

    [Fact]
    public async Task Two_hosts_without_a_witness_cut_apart_both_stop_and_neither_runs_the_vm_until_the_link_is_back()
    {
        await using var lab = await TestLab.UpAsync(2);
        var (h1, h2) = (lab["h1"], lab["h2"]);
        var last = await RunGuestOnH1Async(lab);

        await using (var watch = InstanceWatch.Start(lab, "g"))
        {
            last = Math.Max(last, await LabGuest.CounterAsync(h1));
            await lab.PartitionAsync("h1");

            // Neither side has a majority: h1 loses its lease and kills its VM, and h2 has nobody to fence it.
            await Wait.UntilAsync(() => Task.FromResult(LabGuest.Instances(lab, "g").Count == 0 ? "" : null), TimeSpan.FromSeconds(20), "h1 to kill its VM");
            var quiet = Stopwatch.StartNew();
            while (quiet.Elapsed < TimeSpan.FromSeconds(15))
            {
                Assert.Empty(LabGuest.Instances(lab, "g"));
                await Task.Delay(250);
            }

            Assert.DoesNotContain("fence-host", (await h2.FerryAsync("cluster", "events", "--output", "json")).StandardOutput);

            // Together again, the cluster runs it once more, its count intact.
            await lab.HealAsync();
            var host = await Wait.UntilAsync(async () =>
            {
                var vm = await h2.FerryJsonAsync("vm", "show", "g");
                return vm.GetProperty("state").GetString() == "running" && vm.TryGetProperty("host", out var on) ? on.GetString() : null;
            }, Settle, "the VM to run again");
            Assert.True(await LabGuest.CounterAsync(lab[host!]) >= last, $"the counter went back: it was {last}");
            Assert.Empty(watch.Twice);
        }
    }

    [Fact]
    public async Task A_vm_whose_qemu_crashes_is_restarted_on_its_host_then_moved_then_given_up_with_the_reason()
    {
        await using var lab = await TestLab.UpAsync(3);
        var (h1, h2) = (lab["h1"], lab["h2"]);
        await h1.FerryJsonAsync("volume", "create", "disk", "--size", "64M", "--host", "h1,h2");
        await LabGuest.CreateAsync(h1, "g", "disk", "--prefer", "h1", "--max-restarts", "1", "--max-relocations", "1");
        await h1.FerryJsonAsync("vm", "start", "g");

        await using var watch = InstanceWatch.Start(lab, "g");
        foreach (var (crashOn, runsOn) in new[] { ("h1", "h1"), ("h1", "h2"), ("h2", "h2") })
        {
            var pid = await CrashAsync(lab[crashOn]);
            await Wait.UntilAsync(async () =>
            {
                var vm = await lab[runsOn].FerryJsonAsync("vm", "show", "g");
                return vm.GetProperty("state").GetString() == "running" && vm.GetProperty("host").GetString() == runsOn && vm.GetProperty("pid").GetInt32() != pid;
            }, Settle, $"the VM to run again on {runsOn} after its crash on {crashOn}");
        }

        await CrashAsync(h2);
        await Wait.UntilAsync(async () => (await h2.FerryJsonAsync("vm", "show", "g")).TryGetProperty("waiting", out var why) && why.GetString()!.Contains("not restarted again", StringComparison.Ordinal),
            Settle, "the cluster to give up on the VM");
        var kinds = (await h2.FerryJsonAsync("cluster", "events")).EnumerateArray().Select(e => e.GetProperty("kind").GetString()).ToList();
        Assert.Equal(["restart-vm", "relocate-vm", "restart-vm", "give-up-vm"], kinds.Where(k => k is "restart-vm" or "relocate-vm" or "give-up-vm"));
        Assert.Empty(watch.Twice);
    }

    /// <summary>Kills the VM's QEMU on <paramref name="host"/> (once it runs there); returns its pid.</summary>
    private static async Task<int> CrashAsync(LabMember host)
    {
        var pid = await Wait.UntilAsync<int?>(async () =>
        {
            var vm = await host.FerryJsonAsync("vm", "show", "g");
            return vm.GetProperty("host").GetString() == host.Name && vm.GetProperty("state").GetString() == "running" ? vm.GetProperty("pid").GetInt32() : null;
        }, Settle, $"the VM to run on {host.Name}");
        Ferry.Hypervisor.HostProcess.Kill(pid!.Value);
        return pid.Value;
    }

    /// <summary>Waits until the QEMU process is gone, which must be before the leader may judge its host failed (lease 3 s + margin 1 s).</summary>
    private static async Task GoneBeforeJudgedAsync(int qemu, Stopwatch since, string what)
    {
        await Wait.UntilAsync(() => Task.FromResult(Ferry.Hypervisor.HostProcess.IsAlive(qemu) ? null : ""), TimeSpan.FromSeconds(20), what);
        Assert.True(since.Elapsed < TimeSpan.FromSeconds(4), $"{what} took {since.Elapsed.TotalSeconds:0.0} s, past when the leader could have judged the host failed");
    }

    /// <summary>The guest on a volume with copies on h1 and h2, running on h1; returns its counter.</summary>
    private static async Task<long> RunGuestOnH1Async(TestLab lab)
    {
        var h1 = lab["h1"];
        await h1.FerryJsonAsync("volume", "create", "disk", "--size", "64M", "--host", "h1,h2");
        await LabGuest.CreateAsync(h1, "g", "disk", "--prefer", "h1");
        Assert.Equal("h1", (await h1.FerryJsonAsync("vm", "start", "g")).GetProperty("host").GetString());
        var counted = await LabGuest.CounterAsync(h1);
        await Wait.UntilAsync(async () => LabGuest.Copies(await h1.FerryJsonAsync("volume", "show", "disk")) is ["up-to-date primary connected", "up-to-date secondary connected"] ? "" : null,
            Settle, "both copies in sync");
        return counted;
    }

    /// <summary>Waits until the VM runs on <paramref name="host"/>, as <paramref name="asked"/> says; returns its disk as the cluster shows it.</summary>
    private static async Task<JsonElement> RunsOnAsync(LabMember asked, string host)
    {
        await Wait.UntilAsync(async () =>
        {
            var vm = await asked.FerryJsonAsync("vm", "show", "g");
            return vm.TryGetProperty("host", out var on) && on.GetString() == host && vm.GetProperty("state").GetString() == "running" ? "" : null;
        }, Settle, $"the VM to run on {host}");
        return await asked.FerryJsonAsync("volume", "show", "disk");
    }

    /// <summary>h1 is no longer fenced, its copy is an up-to-date secondary of h2's, and the VM runs on h2 only.</summary>
    private static async Task BackAsSecondaryAsync(TestLab lab, LabMember h2)
    {
        await Wait.UntilAsync(async () =>
        {
            var h1 = (await h2.FerryJsonAsync("cluster", "status")).GetProperty("hosts").EnumerateArray().Single(h => h.GetProperty("name").GetString() == "h1");
            return h1.TryGetProperty("fenced", out var fenced) && fenced.ValueKind != JsonValueKind.Null ? null : "";
        }, Settle, "h1 to be let back");
        await Wait.UntilAsync(async () => LabGuest.Copies(await h2.FerryJsonAsync("volume", "show", "disk")) is ["up-to-date secondary connected", "up-to-date primary connected"] ? "" : null,
            Settle, "h1's copy to resync as h2's secondary");
        Assert.Equal(["h2"], LabGuest.Instances(lab, "g"));
        Assert.Equal(0, (await LabGuest.LocalAsync(lab["h1"], "vms")).GetArrayLength());
    }

    /// <summary>
    /// The timeline reads, in order: h1 failed, h1 fenced, the VM placed on h2, its disk promoted there at
    /// epoch 2, the VM started there and answering its health check; and later h1 let back.
    /// </summary>
    private async Task AssertRecoveryEventsAsync(LabMember asked)
    {
        var events = (await asked.FerryJsonAsync("cluster", "events")).EnumerateArray()
            .Select(e => (At: e.GetProperty("at").GetDateTimeOffset(), Kind: e.GetProperty("kind").GetString()!, Message: e.GetProperty("message").GetString()!))
            .ToList();
        int[] steps =
        [
            events.FindIndex(e => e.Kind == "host-failed" && e.Message.StartsWith("host h1 failed: lease expired", StringComparison.Ordinal)),
            events.FindIndex(e => e.Kind == "fence-host" && e.Message.StartsWith("host h1 fenced (lease expired", StringComparison.Ordinal)),
            events.FindIndex(e => e.Kind == "place-vm" && e.Message == "VM g placed on h2"),
            events.FindIndex(e => e.Kind == "promote-copy" && e.Message == "copy of disk on h2 promoted at epoch 2"),
            events.FindLastIndex(e => e.Kind == "vm-started" && e.Message.StartsWith("VM g started on h2", StringComparison.Ordinal)),
            events.FindLastIndex(e => e.Kind == "vm-healthy" && e.Message.StartsWith("VM g answered its health check on h2", StringComparison.Ordinal)),
        ];
        var timeline = string.Join("\n", events.Where(e => e.Kind != "report-host").Select(e => $"{e.At:HH:mm:ss.fff} {e.Kind}: {e.Message}"));
        output.WriteLine(timeline);
        Assert.True(steps.All(i => i >= 0) && steps.SequenceEqual(steps.Order()), $"the recovery's steps are missing or out of order:\n{timeline}");
        Assert.Contains(events, e => e.Kind == "unfence-host");
    }
}
