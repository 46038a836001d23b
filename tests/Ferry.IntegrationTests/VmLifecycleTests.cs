using Ferry.Hypervisor;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Ferry.IntegrationTests;

/// <summary>The real test guest under real QEMU, driven through the real `ferry` CLI and agent.</summary>
public sealed partial class VmLifecycleTests : IAsyncLifetime
{
    private AgentProcess _agent = null!;

    public async Task InitializeAsync() => _agent = await AgentProcess.StartAsync("--stop-timeout", "20");

    public async Task DisposeAsync() => await _agent.DisposeAsync();

    [Fact]
    public async Task The_guest_counts_on_its_disk_and_serves_the_counter_over_http()
    {
        var vm = await GuestVm.CreateAsync(_agent, "counter");
        var first = await vm.CounterAboveAsync(0);
        var later = await vm.CounterAboveAsync(first + 5);
        Assert.True(later > first);
        Assert.Equal("running", await vm.StateAsync());

        var console = await _agent.FerryAsync("vm", "console", "counter");
        Assert.Equal(0, console.ExitCode);
        Assert.Contains($"ferry-counter {first}", console.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task After_stop_and_start_the_count_continues_where_it_was()
    {
        var vm = await GuestVm.CreateAsync(_agent, "persist");
        var beforeStop = await vm.CounterAboveAsync(10);

        var stop = await _agent.FerryAsync("vm", "stop", "persist");
        Assert.True(stop.ExitCode == 0, stop.StandardError);
        Assert.Equal("stopped", await vm.StateAsync());
        var events = await _agent.FerryJsonAsync("vm", "events", "persist");
        Assert.Contains(events.EnumerateArray(), e => e.GetProperty("type").GetString() == "vm.stopped");

        var start = await _agent.FerryAsync("vm", "start", "persist");
        Assert.True(start.ExitCode == 0, start.StandardError);
        var afterStart = await vm.CounterAboveAsync(0);
        Assert.True(afterStart > beforeStop, $"counter went from {beforeStop} before stop to {afterStart} after start");

        // The guest reads its last value at boot: the second boot must begin at or above what was served.
        var starts = BootLine().Matches(vm.SerialLog).Select(m => long.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(2, starts.Count);
        Assert.True(starts[1] >= beforeStop, $"second boot started at {starts[1]}, below {beforeStop}");
    }

    [Fact]
    public async Task A_guest_killed_with_sigkill_is_reported_as_crashed_with_an_event()
    {
        var vm = await GuestVm.CreateAsync(_agent, "victim");
        await vm.CounterAboveAsync(0);
        var pid = await vm.PidAsync();

        HostProcess.Kill(pid);

        await Wait.UntilAsync(async () => await vm.StateAsync() == "crashed", TimeSpan.FromSeconds(15), "the VM to be reported crashed");
        var events = await _agent.FerryJsonAsync("vm", "events", "victim");
        var crash = events.EnumerateArray().Single(e => e.GetProperty("type").GetString() == "vm.crashed");
        Assert.Contains(pid.ToString(System.Globalization.CultureInfo.InvariantCulture), crash.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal("running", (await _agent.VmAsync("victim")).GetProperty("desired").GetString());

        // A crashed VM starts again, and its count continues.
        var start = await _agent.FerryAsync("vm", "start", "victim");
        Assert.True(start.ExitCode == 0, start.StandardError);
        await vm.CounterAboveAsync(0);
    }

    [Fact]
    public async Task A_restarted_agent_finds_its_running_vm_again()
    {
        var vm = await GuestVm.CreateAsync(_agent, "survivor");
        var before = await vm.CounterAboveAsync(0);
        var pid = await vm.PidAsync();

        await _agent.KillAsync();
        Assert.True(HostProcess.IsAlive(pid), "QEMU must outlive its agent");
        var whileAgentDown = await vm.CounterAboveAsync(before);

        await _agent.LaunchAsync();
        var shown = await _agent.VmAsync("survivor");
        Assert.Equal("running", shown.GetProperty("state").GetString());
        Assert.Equal(pid, shown.GetProperty("pid").GetInt32());
        var events = await _agent.FerryJsonAsync("vm", "events", "survivor");
        Assert.Contains(events.EnumerateArray(), e => e.GetProperty("type").GetString() == "vm.reattached");
        await vm.CounterAboveAsync(whileAgentDown);

        // The new agent controls the VM it found: a graceful stop works through the re-attached QMP.
        var stop = await _agent.FerryAsync("vm", "stop", "survivor");
        Assert.True(stop.ExitCode == 0, stop.StandardError);
        Assert.False(HostProcess.IsAlive(pid));
    }

    [Fact]
    public async Task A_vm_that_died_while_its_agent_was_down_is_reported_crashed()
    {
        var vm = await GuestVm.CreateAsync(_agent, "orphan");
        await vm.CounterAboveAsync(0);
        var pid = await vm.PidAsync();

        await _agent.KillAsync();
        HostProcess.Kill(pid);
        await Wait.UntilAsync(() => Task.FromResult(!HostProcess.IsAlive(pid)), TimeSpan.FromSeconds(10), "QEMU to die");
        await _agent.LaunchAsync();

        Assert.Equal("crashed", await vm.StateAsync());
        var events = await _agent.FerryJsonAsync("vm", "events", "orphan");
        Assert.Contains(events.EnumerateArray(), e => e.GetProperty("type").GetString() == "vm.crashed");
    }

    [Fact]
    public async Task Pause_freezes_the_guest_and_resume_lets_it_continue()
    {
        var vm = await GuestVm.CreateAsync(_agent, "sleeper");
        await vm.CounterAboveAsync(0);

        var pause = await _agent.FerryJsonAsync("vm", "pause", "sleeper");
        Assert.Equal("paused", pause.GetProperty("state").GetString());

        // A paused guest runs no code: its HTTP server cannot answer, and its disk does not change.
        var disk = Path.Combine(_agent.DataDirectory, "sleeper.raw");
        var frozen = await File.ReadAllBytesAsync(disk);
        await Assert.ThrowsAnyAsync<Exception>(vm.CounterAsync);
        Assert.Equal(frozen.AsSpan(0, 512).ToArray(), (await File.ReadAllBytesAsync(disk)).AsSpan(0, 512).ToArray());

        var resume = await _agent.FerryJsonAsync("vm", "resume", "sleeper");
        Assert.Equal("running", resume.GetProperty("state").GetString());
        await vm.CounterAboveAsync(0);
        var events = (await _agent.FerryJsonAsync("vm", "events", "sleeper")).EnumerateArray().Select(e => e.GetProperty("type").GetString()).ToList();
        Assert.Contains("vm.paused", events);
        Assert.Contains("vm.resumed", events);
    }

    [Fact]
    public async Task Restart_boots_the_guest_again_with_its_count_intact()
    {
        var vm = await GuestVm.CreateAsync(_agent, "rebooter");
        var before = await vm.CounterAboveAsync(0);
        var firstPid = await vm.PidAsync();

        var restart = await _agent.FerryJsonAsync("vm", "restart", "rebooter");
        Assert.Equal("running", restart.GetProperty("state").GetString());
        Assert.NotEqual(firstPid, restart.GetProperty("pid").GetInt32());
        Assert.True(await vm.CounterAboveAsync(before) > before);
    }

    [Fact]
    public async Task A_guest_that_powers_itself_off_is_stopped_not_crashed()
    {
        var vm = await GuestVm.CreateAsync(_agent, "quitter");
        await vm.CounterAboveAsync(0);
        var pid = await vm.PidAsync();

        // The guest powers itself off on this request; the agent did not ask for it.
        using var response = await _agent.Http.GetAsync($"http://127.0.0.1:{vm.HttpPort}/cgi-bin/poweroff");
        Assert.True(response.IsSuccessStatusCode);

        await Wait.UntilAsync(async () => await vm.StateAsync() == "stopped", TimeSpan.FromSeconds(20), "the VM to stop");
        Assert.False(HostProcess.IsAlive(pid));
        Assert.Equal("stopped", (await _agent.VmAsync("quitter")).GetProperty("desired").GetString());
        var events = (await _agent.FerryJsonAsync("vm", "events", "quitter")).EnumerateArray().Select(e => e.GetProperty("type").GetString()).ToList();
        Assert.Contains("vm.stopped", events);
        Assert.DoesNotContain("vm.crashed", events);
    }

    [Fact]
    public async Task A_guest_whose_volume_runs_out_of_space_is_paused_with_the_reason_and_goes_on_when_resumed_with_room()
    {
        // The agent's volumes on a file system of 1 MiB, filled once the volume exists: its data file is thin,
        // so the guest's first write to its disk finds no room.
        var volumes = Path.Combine(_agent.DataDirectory, "volumes");
        Directory.CreateDirectory(volumes);
        await Processes.RunOkAsync("mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", volumes);
        try
        {
            await _agent.FerryJsonAsync("volume", "create", "tight", "--size", "16M");
            var filler = Path.Combine(volumes, "filler");
            await Processes.RunAsync("dd", ["if=/dev/zero", $"of={filler}", "bs=4096"], TimeSpan.FromSeconds(30));

            var vm = await GuestVm.CreateAsync(_agent, "tight", disk: "volume:tight");
            await Wait.UntilAsync(async () => await vm.StateAsync() == "paused", GuestVm.BootTimeout, "the full disk to pause the guest");
            var error = (await _agent.FerryJsonAsync("vm", "events", "tight")).EnumerateArray().Single(e => e.GetProperty("type").GetString() == "vm.io-error");
            Assert.Contains("no space left", error.GetProperty("message").GetString(), StringComparison.Ordinal);

            // Room again: resumed, QEMU retries the write and the guest goes on counting.
            File.Delete(filler);
            var resume = await _agent.FerryJsonAsync("vm", "resume", "tight");
            Assert.Equal("running", resume.GetProperty("state").GetString());
            await vm.CounterAboveAsync(2);
        }
        finally
        {
            // The agent and QEMU let go of the file system first; the data directory goes with the agent, after the test.
            await _agent.KillAsync();
            AgentProcess.KillQemus(_agent.DataDirectory);
            await Processes.RunOkAsync("umount", "-l", volumes);
        }
    }

    [GeneratedRegex(@"ferry-guest booted counter-start=(\d+)")]
    private static partial Regex BootLine();
}
