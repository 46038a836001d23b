using System.Text.Json;
using Ferry.IntegrationTests.Cluster;
using Ferry.IntegrationTests.Lab;
using Xunit.Abstractions;

namespace Ferry.IntegrationTests.Migration;

/// <summary>
/// Live migration with the real guest counting on its replicated disk: the counter only goes up across
/// the move, and no two hosts ever run it at once. Failures injected at each step (the target's QEMU
/// dies, the migration times out, the source or the target host dies) end with one running VM and
/// consistent volume roles.
/// </summary>
public class MigrationTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task A_vm_migrates_there_and_back_under_its_write_load_with_its_counter_only_going_up_and_never_running_twice()
    {
        await using var lab = await TestLab.UpAsync(3);
        var (h1, h2, h3) = (lab["h1"], lab["h2"], lab["h3"]);
        await RunGuestOnH1Async(lab);

        await using (var watch = GuestWatch.Start(lab, "g"))
        {
            var before = await LabGuest.CounterAsync(h1);
            var moved = await h3.FerryJsonAsync("vm", "migrate", "g", "--to", "h2");
            Assert.Equal("h2", moved.GetProperty("host").GetString());
            var last = moved.GetProperty("lastMigration");
            Assert.True(last.GetProperty("succeeded").GetBoolean());
            output.WriteLine($"h1 -> h2: {last}");
            Assert.True(await LabGuest.CounterAsync(h2) > before, "the counter did not go on on h2");
            await CopiesAsync(h2, "up-to-date secondary connected", "up-to-date primary connected");
            Assert.Equal(2UL, (await h2.FerryJsonAsync("volume", "show", "disk")).GetProperty("epoch").GetUInt64());

            // Back, to the host placement chooses: the only other one with a copy.
            var back = await h1.FerryJsonAsync("vm", "migrate", "g");
            Assert.Equal("h1", back.GetProperty("host").GetString());
            await CopiesAsync(h1, "up-to-date primary connected", "up-to-date secondary connected");
            Assert.Equal(3UL, (await h1.FerryJsonAsync("volume", "show", "disk")).GetProperty("epoch").GetUInt64());
            await LabGuest.GoesOnCountingAsync(h1);

            var counts = watch.Counts;
            output.WriteLine($"counter read {counts.Count} times, {counts[0]} to {counts[^1]}; longest stall {watch.LongestStall.TotalMilliseconds:0} ms");
            watch.AssertOnlyUpAndNeverTwice();
        }

        Assert.Equal(["h1"], LabGuest.Instances(lab, "g"));
        var events = (await h2.FerryJsonAsync("cluster", "events")).EnumerateArray().Select(e => e.GetProperty("kind").GetString()).ToList();
        Assert.Equal(2, events.Count(k => k == "complete-migration"));
    }

    [Fact]
    public async Task A_vm_on_three_copies_migrates_under_load_and_the_third_copy_follows_each_new_primary_without_a_resync()
    {
        await using var lab = await TestLab.UpAsync(3);
        var (h1, h2, h3) = (lab["h1"], lab["h2"], lab["h3"]);
        await RunGuestOnH1Async(lab, "h1,h2,h3");

        await using (var watch = GuestWatch.Start(lab, "g"))
        {
            var before = await LabGuest.CounterAsync(h1);
            Assert.Equal("h2", (await h1.FerryJsonAsync("vm", "migrate", "g", "--to", "h2")).GetProperty("host").GetString());
            Assert.True(await LabGuest.CounterAsync(h2) > before, "the counter did not go on on h2");
            await CopiesAsync(h2, "up-to-date secondary connected", "up-to-date primary connected", "up-to-date secondary connected");
            await FollowsAsync(h3, "h2");

            Assert.Equal("h3", (await h1.FerryJsonAsync("vm", "migrate", "g", "--to", "h3")).GetProperty("host").GetString());
            await CopiesAsync(h3, "up-to-date secondary connected", "up-to-date secondary connected", "up-to-date primary connected");
            await FollowsAsync(h1, "h3");
            await LabGuest.GoesOnCountingAsync(h3);
            watch.AssertOnlyUpAndNeverTwice();
        }

        Assert.Equal(["h3"], LabGuest.Instances(lab, "g"));

        // The copy that took part in neither handoff got both primaries' writes as they were made.
        static async Task FollowsAsync(LabMember third, string primary) =>
            await Wait.UntilAsync(
                async () =>
                {
                    var copy = (await LabGuest.LocalAsync(third, "volumes")).EnumerateArray().Single().GetProperty("copy");
                    var incoming = copy.GetProperty("incoming");
                    return incoming.GetProperty("from").GetString()!.StartsWith(primary + " ", StringComparison.Ordinal)
                        && incoming.GetProperty("resyncBytesReceived").GetInt64() == 0 && !copy.TryGetProperty("secondIncoming", out _);
                },
                Settle,
                $"the third copy on {third.Name} to follow {primary} alone, with nothing resynced");
    }

    [Fact]
    public async Task A_migration_whose_target_qemu_dies_or_that_times_out_fails_with_the_reason_and_the_vm_runs_on_at_its_source()
    {
        await using var lab = await TestLab.UpAsync(3);
        var (h1, h2) = (lab["h1"], lab["h2"]);
        await RunGuestOnH1Async(lab);

        await using (var watch = GuestWatch.Start(lab, "g"))
        {
            // Slowed to 1 MiB/s, the migration is still sending when the target's QEMU is killed.
            var migrating = await SlowMigrationAsync(lab, h1);
            Ferry.Hypervisor.HostProcess.Kill(LabGuest.Processes(lab, "g").Single(p => p.Host == "h2").Pid);
            var failed = await migrating;
            Assert.NotEqual(0, failed.ExitCode);
            Assert.Contains("failed", failed.StandardError, StringComparison.Ordinal);
            output.WriteLine(failed.StandardError);
            await StaysOnH1Async(lab);

            // Too slow for its timeout: cancelled, and the VM runs on.
            var timedOut = await h2.FerryAsync("vm", "migrate", "g", "--to", "h2", "--bandwidth", "1M", "--timeout", "3s");
            Assert.NotEqual(0, timedOut.ExitCode);
            Assert.True(timedOut.StandardError.Contains("not done after 3 s", StringComparison.Ordinal), timedOut.StandardError);
            await StaysOnH1Async(lab);

            watch.AssertOnlyUpAndNeverTwice();
        }

        var last = (await h1.FerryJsonAsync("vm", "show", "g")).GetProperty("lastMigration");
        Assert.False(last.GetProperty("succeeded").GetBoolean());
    }

    [Fact]
    public async Task A_source_that_dies_during_the_migration_leaves_the_vm_to_run_at_its_target_with_no_write_lost()
    {
        await using var lab = await TestLab.UpAsync(3);
        var (h1, h2) = (lab["h1"], lab["h2"]);
        var last = await RunGuestOnH1Async(lab);

        await using var watch = GuestWatch.Start(lab, "g");
        var migrating = await SlowMigrationAsync(lab, h2);
        last = Math.Max(last, await LabGuest.CounterAsync(h1));
        await lab.KillAsync("h1");

        var failed = await migrating;
        Assert.NotEqual(0, failed.ExitCode);
        output.WriteLine(failed.StandardError);
        await Wait.UntilAsync(async () =>
        {
            var vm = await h2.FerryJsonAsync("vm", "show", "g");
            return vm.GetProperty("host").GetString() == "h2" && vm.GetProperty("state").GetString() == "running";
        }, Settle, "the VM to run on h2");
        Assert.True(await LabGuest.CounterAsync(h2) >= last, $"the counter went back: it was {last} on h1");
        Assert.Equal(["h2"], LabGuest.Instances(lab, "g"));
        Assert.Empty(watch.Twice);
    }

    [Fact]
    public async Task With_three_copies_a_source_that_dies_during_the_migration_leaves_the_vm_running_once_on_another_copy_with_no_write_lost()
    {
        await using var lab = await TestLab.UpAsync(3);
        var (h1, h2) = (lab["h1"], lab["h2"]);
        var last = await RunGuestOnH1Async(lab, "h1,h2,h3");

        await using var watch = GuestWatch.Start(lab, "g");
        var migrating = await SlowMigrationAsync(lab, h2);
        last = Math.Max(last, await LabGuest.CounterAsync(h1));
        await lab.KillAsync("h1");

        Assert.NotEqual(0, (await migrating).ExitCode);
        string? host = null;
        await Wait.UntilAsync(async () =>
        {
            var vm = await h2.FerryJsonAsync("vm", "show", "g");
            host = vm.GetProperty("host").GetString();
            return host is "h2" or "h3" && vm.GetProperty("state").GetString() == "running";
        }, Settle, "the VM to run on h2 or h3");
        output.WriteLine($"recovered on {host}");
        Assert.True(await LabGuest.CounterAsync(lab[host!]) >= last, $"the counter went back: it was {last} on h1");
        await Wait.UntilAsync(() => Task.FromResult(LabGuest.Instances(lab, "g").SequenceEqual([host!])), Settle, $"one QEMU of the guest, on {host}");
        await LabGuest.GoesOnCountingAsync(lab[host!]);
        Assert.Empty(watch.Twice);
    }

    /// <remarks>
    /// Skipped: in about one run of seven the guest locks up in the kernel right after it resumes on h2
    /// (its console: "soft lockup - CPU#0 stuck", in the counter's dd) and never answers again, though
    /// the migration completed and exactly one QEMU runs it. No write of it reached h2's copy after the
    /// resume. Twelve runs of the same slowed migration without the kill, and five with the kill but a
    /// volume on h1 and h2 only, all passed. A later failure (1 of 20) showed the guest kernel jumping into
    /// its own data at the resume: guest memory, not the disk. Plain QEMU does the same without Ferry when
    /// the CPU is contended during the move (scripts/tcg-migration-check.sh: 2 of 25); see docs/migration.md "Not yet".
    /// </remarks>
    [Fact(Skip = "QEMU's TCG migration sometimes corrupts the guest when the CPU is contended, as the kill here makes it; reproduced without Ferry by scripts/tcg-migration-check.sh, see docs/migration.md")]
    public async Task With_three_copies_the_third_host_dying_during_the_migration_does_not_stop_it()
    {
        await using var lab = await TestLab.UpAsync(3);
        var (h1, h2) = (lab["h1"], lab["h2"]);
        await RunGuestOnH1Async(lab, "h1,h2,h3");

        await using (var watch = GuestWatch.Start(lab, "g"))
        {
            var migrating = h1.FerryAsync("vm", "migrate", "g", "--to", "h2", "--bandwidth", "16M");
            await Wait.UntilAsync(async () => (await LabGuest.LocalAsync(h2, "vms")).EnumerateArray().Any(v => v.GetProperty("state").GetString() == "paused"), Settle, "QEMU on h2 to take the state");
            await lab.KillAsync("h3");
            var moved = await migrating;
            Assert.True(moved.ExitCode == 0, moved.StandardError);
            await LabGuest.GoesOnCountingAsync(h2);
            watch.AssertOnlyUpAndNeverTwice();
        }

        Assert.Equal(["h2"], LabGuest.Instances(lab, "g"));

        // h2's copy says "connecting" while it keeps calling the dead h3.
        await Wait.UntilAsync(
            async () => LabGuest.Copies(await h2.FerryJsonAsync("volume", "show", "disk")) is ["up-to-date secondary connected", var target, _]
                && target.StartsWith("up-to-date primary", StringComparison.Ordinal),
            Settle,
            "h1's copy to follow h2's");
    }

    [Fact]
    public async Task A_target_that_dies_during_the_migration_leaves_the_vm_running_at_its_source()
    {
        await using var lab = await TestLab.UpAsync(3);
        var h1 = lab["h1"];
        await RunGuestOnH1Async(lab);

        await using var watch = GuestWatch.Start(lab, "g");
        var migrating = await SlowMigrationAsync(lab, h1);
        await lab.KillAsync("h2");

        var failed = await migrating;
        Assert.NotEqual(0, failed.ExitCode);
        output.WriteLine(failed.StandardError);
        var vm = await h1.FerryJsonAsync("vm", "show", "g");
        Assert.Equal(("h1", "running"), (vm.GetProperty("host").GetString(), vm.GetProperty("state").GetString()));
        await LabGuest.GoesOnCountingAsync(h1);
        Assert.Equal(["h1"], LabGuest.Instances(lab, "g"));
        Assert.Empty(watch.Twice);
    }

    [Fact]
    public async Task A_target_cut_off_during_the_migration_is_fenced_and_the_vm_runs_on_at_its_source()
    {
        await using var lab = await TestLab.UpAsync(3);
        var h1 = lab["h1"];
        await RunGuestOnH1Async(lab);

        await using (var watch = GuestWatch.Start(lab, "g"))
        {
            var migrating = await SlowMigrationAsync(lab, h1);
            await lab.PartitionAsync("h2");

            // The stream stalls rather than breaks; the cluster fences h2, which ends the migration, and the source cancels it.
            var failed = await migrating;
            Assert.NotEqual(0, failed.ExitCode);
            Assert.Contains("h2 failed during the migration", failed.StandardError, StringComparison.Ordinal);
            await LabGuest.GoesOnCountingAsync(h1);
            Assert.Equal(("h1", "running"), await PlaceAsync(h1));

            await lab.HealAsync();
            await CopiesAsync(h1, "up-to-date primary connected", "up-to-date secondary connected");
            Assert.Equal(["h1"], LabGuest.Instances(lab, "g"));
            watch.AssertOnlyUpAndNeverTwice();
        }
    }

    /// <summary>
    /// `vm migrate g --to h2` asked of <paramref name="asked"/>, slowed to 1 MiB/s so that it is still
    /// sending when the test strikes; returns once h2's QEMU takes the state, with the command's outcome to come.
    /// </summary>
    private static async Task<Task<ProcessOutput>> SlowMigrationAsync(TestLab lab, LabMember asked)
    {
        var migrating = asked.FerryAsync("vm", "migrate", "g", "--to", "h2", "--bandwidth", "1M");
        await Wait.UntilAsync(async () => (await LabGuest.LocalAsync(lab["h2"], "vms")).EnumerateArray().Any(v => v.GetProperty("state").GetString() == "paused"), Settle, "QEMU on h2 to take the state");
        return migrating;
    }

    private static async Task<(string?, string?)> PlaceAsync(LabMember asked)
    {
        var vm = await asked.FerryJsonAsync("vm", "show", "g");
        return (vm.GetProperty("host").GetString(), vm.GetProperty("state").GetString());
    }

    /// <summary>The guest on a volume of <paramref name="hosts"/> (h1 first), running on h1, every copy in step; returns its counter.</summary>
    internal static async Task<long> RunGuestOnH1Async(TestLab lab, string hosts = "h1,h2")
    {
        var h1 = lab["h1"];
        await h1.FerryJsonAsync("volume", "create", "disk", "--size", "64M", "--host", hosts);
        await LabGuest.CreateAsync(h1, "g", "disk", "--prefer", "h1");
        Assert.Equal("h1", (await h1.FerryJsonAsync("vm", "start", "g")).GetProperty("host").GetString());
        var counted = await LabGuest.CounterAsync(h1);
        await CopiesAsync(h1, ["up-to-date primary connected", .. hosts.Split(',').Skip(1).Select(_ => "up-to-date secondary connected")]);
        return counted;
    }

    private static Task CopiesAsync(LabMember asked, params string[] expected) =>
        Wait.UntilAsync(async () => LabGuest.Copies(await asked.FerryJsonAsync("volume", "show", "disk")).SequenceEqual(expected), Settle, $"the copies to be [{string.Join("; ", expected)}]");

    /// <summary>The VM runs on h1 only, counting, its copy there primary and h2's secondary in step.</summary>
    private static async Task StaysOnH1Async(TestLab lab)
    {
        var h1 = lab["h1"];
        var vm = await h1.FerryJsonAsync("vm", "show", "g");
        Assert.Equal(("h1", "running"), (vm.GetProperty("host").GetString(), vm.GetProperty("state").GetString()));
        await LabGuest.GoesOnCountingAsync(h1);
        await CopiesAsync(h1, "up-to-date primary connected", "up-to-date secondary connected");
        await Wait.UntilAsync(
            async () => LabGuest.Instances(lab, "g") is ["h1"] && !(await LabGuest.LocalAsync(lab["h2"], "vms")).EnumerateArray().Any(v => v.GetProperty("name").GetString() == "g"),
            Settle,
            "h2 to let go of the VM");
    }
}
