using System.Globalization;
using Ferry.IntegrationTests.Nbd;

namespace Ferry.IntegrationTests;

/// <summary>Volumes through the real agent: the CLI, the agent's NBD socket with real clients, and a VM on a volume.</summary>
public sealed class VolumeTests : IAsyncLifetime
{
    private AgentProcess _agent = null!;

    public async Task InitializeAsync() => _agent = await AgentProcess.StartAsync("--stop-timeout", "20");

    public async Task DisposeAsync() => await _agent.DisposeAsync();

    private string NbdUri(string volume) => $"nbd+unix:///{volume}?socket={Path.Combine(_agent.DataDirectory, "nbd.sock")}";

    [Fact]
    public async Task Volumes_are_created_listed_resized_and_deleted_through_the_cli()
    {
        var created = await _agent.FerryJsonAsync("volume", "create", "data1", "--size", "64M");
        Assert.Equal(64L << 20, created.GetProperty("size").GetInt64());
        Assert.Equal(0, created.GetProperty("allocated").GetInt64());
        var copy = created.GetProperty("copy");
        Assert.Equal("up-to-date", copy.GetProperty("disk").GetString());
        Assert.Equal("primary", copy.GetProperty("role").GetString());
        Assert.Equal("stand-alone", copy.GetProperty("connection").GetString());

        var list = await _agent.FerryJsonAsync("volume", "list");
        Assert.Equal("data1", Assert.Single(list.EnumerateArray()).GetProperty("name").GetString());

        var grown = await _agent.FerryJsonAsync("volume", "resize", "data1", "--size", "128M");
        Assert.Equal(128L << 20, grown.GetProperty("size").GetInt64());
        var info = await Processes.RunAsync("qemu-img", ["info", "--output=json", NbdUri("data1")], TimeSpan.FromMinutes(1));
        Assert.Contains($"\"virtual-size\": {128L << 20}", info.StandardOutput, StringComparison.Ordinal);
        Assert.Equal(2, (await _agent.FerryAsync("volume", "resize", "data1", "--size", "64M")).ExitCode);
        Assert.Equal(0, (await _agent.FerryAsync("volume", "resize", "data1", "--size", "64M", "--shrink")).ExitCode);

        Assert.Equal(0, (await _agent.FerryAsync("volume", "delete", "data1")).ExitCode);
        Assert.Equal(0, (await _agent.FerryJsonAsync("volume", "list")).GetArrayLength());
    }

    [Theory]
    [InlineData(2, "volume", "create", "v", "--size", "-1G")]
    [InlineData(2, "volume", "create", "v", "--size", "4097")]
    [InlineData(2, "volume", "create", "Bad_Name", "--size", "1G")]
    [InlineData(3, "volume", "show", "ghost")]
    [InlineData(3, "volume", "delete", "ghost")]
    [InlineData(3, "volume", "resize", "ghost", "--size", "1G")]
    public async Task Bad_volume_requests_get_a_clear_error_and_exit_code(int exitCode, params string[] args)
    {
        var output = await _agent.FerryAsync(args);
        Assert.True(output.ExitCode == exitCode, $"expected {exitCode}, got {output.ExitCode}: {output.StandardError}");
        Assert.StartsWith("error: ", output.StandardError, StringComparison.Ordinal);
        Assert.Equal(0, (await _agent.FerryJsonAsync("volume", "list")).GetArrayLength());
    }

    [Fact]
    public async Task A_duplicate_volume_is_a_conflict() 
    {
        Assert.Equal(0, (await _agent.FerryAsync("volume", "create", "dup", "--size", "1M")).ExitCode);
        Assert.Equal(4, (await _agent.FerryAsync("volume", "create", "dup", "--size", "2M")).ExitCode);
    }

    [Fact]
    public async Task Real_clients_use_a_volume_through_the_agents_nbd_socket()
    {
        await _agent.FerryJsonAsync("volume", "create", "shared", "--size", "32M");
        var info = await Processes.RunAsync("qemu-img", ["info", "--output=json", NbdUri("shared")], TimeSpan.FromMinutes(1));
        Assert.True(info.ExitCode == 0, info.StandardError);
        Assert.Contains("\"virtual-size\": 33554432", info.StandardOutput, StringComparison.Ordinal);

        await NbdTools.QemuIoAsync(NbdUri("shared"), "write -P 0x5a 1M 256k", "write -P 0x77 2M 64k", "write -z -u 2M 64k", "aio_flush");
        await NbdTools.QemuIoAsync(NbdUri("shared"), "read -P 0x5a 1M 256k", "read -P 0 2M 64k", "read -P 0 0 1M");

        // The zeroed range allowed unmapping: it was punched out again, so only the pattern stays allocated.
        var shown = await _agent.FerryJsonAsync("volume", "show", "shared");
        Assert.Equal(256 * 1024, shown.GetProperty("allocated").GetInt64());
    }

    [Fact]
    public async Task Acknowledged_fua_and_flushed_writes_survive_a_kill_of_the_agent()
    {
        await _agent.FerryJsonAsync("volume", "create", "durable", "--size", "16M");
        var uri = NbdUri("durable");
        await NbdTools.QemuIoAsync(uri, "write -f -P 0x11 0 64k", "write -P 0x22 64k 64k", "flush", "write -f -P 0x33 1M 4k");

        await _agent.KillAsync();
        await _agent.LaunchAsync();

        await NbdTools.QemuIoAsync(uri, "read -P 0x11 0 64k", "read -P 0x22 64k 64k", "read -P 0x33 1M 4k");
    }

    [Fact]
    public async Task The_test_guest_boots_and_counts_on_a_ferry_volume()
    {
        await _agent.FerryJsonAsync("volume", "create", "boot", "--size", "16M");
        var vm = await GuestVm.CreateAsync(_agent, "onvolume", start: true, disk: "volume:boot");
        var before = await vm.CounterAboveAsync(5);

        var inUse = await _agent.FerryAsync("volume", "delete", "boot");
        Assert.Equal(5, inUse.ExitCode);
        Assert.Contains("'onvolume'", inUse.StandardError, StringComparison.Ordinal);

        Assert.Equal(0, (await _agent.FerryAsync("vm", "stop", "onvolume")).ExitCode);
        Assert.Equal(0, (await _agent.FerryAsync("vm", "start", "onvolume")).ExitCode);
        var after = await vm.CounterAboveAsync(before);
        Assert.True(after > before, string.Create(CultureInfo.InvariantCulture, $"{after} after restart, {before} before"));
    }

    [Fact]
    public async Task A_guest_on_a_volume_keeps_counting_across_an_agent_restart()
    {
        await _agent.FerryJsonAsync("volume", "create", "steady", "--size", "16M");
        var vm = await GuestVm.CreateAsync(_agent, "steady", start: true, disk: "volume:steady");
        var before = await vm.CounterAboveAsync(5);
        var pid = await vm.PidAsync();

        // The agent (and with it the NBD server) dies; QEMU waits and reconnects when it is back.
        await _agent.KillAsync();
        await _agent.LaunchAsync();

        var after = await vm.CounterAboveAsync(before + 10);
        Assert.Equal(pid, await vm.PidAsync());
        Assert.Equal("running", await vm.StateAsync());
        Assert.DoesNotContain("ferry-counter-error", vm.SerialLog, StringComparison.Ordinal);
        Assert.True(after > before);
    }
}
