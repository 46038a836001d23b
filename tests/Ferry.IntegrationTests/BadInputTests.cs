using System.Net;
using System.Text;
using System.Text.Json;

namespace Ferry.IntegrationTests;

/// <summary>Every kind of bad input gets one clear line, a precise exit code or HTTP status, and changes nothing.</summary>
public sealed class BadInputTests : IAsyncLifetime
{
    private AgentProcess _agent = null!;
    private string _disk = null!;

    public async Task InitializeAsync()
    {
        _agent = await AgentProcess.StartAsync();
        _disk = Path.Combine(_agent.DataDirectory, "disk.raw");
        await File.WriteAllBytesAsync(_disk, new byte[1024 * 1024]);
    }

    public async Task DisposeAsync() => await _agent.DisposeAsync();

    private static void AssertOneLineError(ProcessOutput output, int exitCode, string mentions)
    {
        Assert.True(output.ExitCode == exitCode, $"expected exit {exitCode}, got {output.ExitCode}: {output.StandardError}");
        var line = Assert.Single(output.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("error: ", line, StringComparison.Ordinal);
        Assert.Contains(mentions, line, StringComparison.Ordinal);
    }

    private async Task AssertNoVmsAsync()
    {
        var list = await _agent.FerryJsonAsync("vm", "list");
        Assert.Equal(0, list.GetArrayLength());
        Assert.False(Directory.Exists(Path.Combine(_agent.DataDirectory, "vms")) && Directory.EnumerateFileSystemEntries(Path.Combine(_agent.DataDirectory, "vms")).Any());
    }

    [Theory]
    [InlineData("--lease", "1s", "three renewals")]
    [InlineData("--lease-margin", "100ms", "at least 0.5 s")]
    [InlineData("--lease-renewal", "soon", "invalid duration 'soon'")]
    public async Task A_cluster_with_lease_timings_that_break_the_rules_is_not_made(string option, string value, string mentions)
    {
        AssertOneLineError(await _agent.FerryAsync("cluster", "init", "c1", option, value), 2, mentions);
        Assert.DoesNotContain("cluster", await _agent.Http.GetStringAsync($"{_agent.Url}/api/v1/health"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_second_agent_on_a_port_already_taken_says_so_and_exits()
    {
        var output = await Processes.RunAsync(
            "dotnet", [Repo.FerryDll, "agent", "--data", Path.Combine(_agent.DataDirectory, "second"), "--listen", _agent.Url, "--peer-listen", $"127.0.0.1:{Processes.FreeTcpPort()}"], TimeSpan.FromMinutes(1));
        Assert.True(output.ExitCode == 7, $"expected exit 7, got {output.ExitCode}: {output.StandardError}");
        Assert.Contains("error: the agent cannot start", output.StandardError, StringComparison.Ordinal);
        Assert.Contains("address already in use", output.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", output.StandardError, StringComparison.Ordinal);
        Assert.Equal(0, (await _agent.FerryJsonAsync("vm", "list")).GetArrayLength());
    }

    [Theory]
    [InlineData("show")]
    [InlineData("start")]
    [InlineData("stop")]
    [InlineData("restart")]
    [InlineData("pause")]
    [InlineData("resume")]
    [InlineData("delete")]
    [InlineData("console")]
    public async Task An_unknown_vm_is_not_found(string verb) =>
        AssertOneLineError(await _agent.FerryAsync("vm", verb, "ghost"), 3, "'ghost'");

    [Theory]
    [InlineData("-256M", "invalid size")]
    [InlineData("0", "invalid size")]
    [InlineData("10", "at least 16 MiB")]
    [InlineData("100T", "this host has only")]
    [InlineData("lots", "invalid size")]
    public async Task A_negative_or_absurd_memory_size_is_refused_and_nothing_is_created(string memory, string mentions)
    {
        AssertOneLineError(await _agent.FerryAsync("vm", "create", "big", "--memory", memory, "--disk", _disk), 2, mentions);
        await AssertNoVmsAsync();
    }

    [Fact]
    public async Task A_disk_that_does_not_exist_is_refused_and_nothing_is_created()
    {
        AssertOneLineError(await _agent.FerryAsync("vm", "create", "nodisk", "--disk", "/nonexistent/disk.raw"), 2, "/nonexistent/disk.raw");
        await AssertNoVmsAsync();
    }

    [Fact]
    public async Task A_duplicate_name_is_a_conflict_and_the_first_vm_is_unchanged()
    {
        var created = await _agent.FerryAsync("vm", "create", "twin", "--disk", _disk, "--memory", "64M");
        Assert.Equal(0, created.ExitCode);
        AssertOneLineError(await _agent.FerryAsync("vm", "create", "twin", "--disk", _disk, "--memory", "128M"), 4, "already exists");
        Assert.Equal(64, (await _agent.VmAsync("twin")).GetProperty("spec").GetProperty("memoryMiB").GetInt32());
    }

    [Fact]
    public async Task Bad_names_and_options_are_usage_errors()
    {
        AssertOneLineError(await _agent.FerryAsync("vm", "create", "Bad_Name", "--disk", _disk), 2, "invalid VM name");
        AssertOneLineError(await _agent.FerryAsync("vm", "create", "x", "--disk", _disk, "--forward", "80"), 2, "--forward");
        AssertOneLineError(await _agent.FerryAsync("vm", "create", "x", "--disk", _disk, "--cpus", "0"), 2, "vCPU");
        var unknown = await _agent.FerryAsync("vm", "frobnicate");
        Assert.Equal(2, unknown.ExitCode);
        await AssertNoVmsAsync();
    }

    [Fact]
    public async Task A_running_vm_cannot_be_deleted()
    {
        var vm = await GuestVm.CreateAsync(_agent, "busy");
        AssertOneLineError(await _agent.FerryAsync("vm", "delete", "busy"), 5, "stop it first");
        Assert.Equal("running", await vm.StateAsync());
        Assert.Equal(0, (await _agent.FerryAsync("vm", "stop", "busy", "--force")).ExitCode);
        Assert.Equal(0, (await _agent.FerryAsync("vm", "delete", "busy")).ExitCode);
        await AssertNoVmsAsync();
    }

    [Fact]
    public async Task The_api_answers_bad_requests_with_a_problem_document()
    {
        using var malformed = await _agent.Http.PostAsync($"{_agent.Url}/api/v1/vms", new StringContent("{\"name\": ", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, malformed.StatusCode);
        Assert.Contains("invalid VM spec", await ProblemDetailAsync(malformed), StringComparison.Ordinal);

        using var noName = await _agent.Http.PostAsync($"{_agent.Url}/api/v1/vms", new StringContent("{\"memoryMiB\": 64}", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, noName.StatusCode);
        Assert.Contains("name", await ProblemDetailAsync(noName), StringComparison.Ordinal);

        using var wrongType = await _agent.Http.PostAsync($"{_agent.Url}/api/v1/vms", new StringContent("{\"name\": \"x\", \"memoryMiB\": \"lots\"}", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, wrongType.StatusCode);

        using var missing = await _agent.Http.GetAsync($"{_agent.Url}/api/v1/vms/ghost");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Contains("'ghost'", await ProblemDetailAsync(missing), StringComparison.Ordinal);

        using var openApi = await _agent.Http.GetAsync($"{_agent.Url}/openapi/v1.json");
        Assert.Equal(HttpStatusCode.OK, openApi.StatusCode);
        Assert.Contains("/api/v1/vms", await openApi.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        await AssertNoVmsAsync();
    }

    [Fact]
    public async Task An_unreachable_agent_is_reported_as_unavailable()
    {
        var output = await Processes.RunAsync("dotnet", [Repo.FerryDll, "--server", $"http://127.0.0.1:{Processes.FreeTcpPort()}", "vm", "list"], TimeSpan.FromMinutes(1));
        Assert.Equal(6, output.ExitCode);
        Assert.Contains("cannot reach the agent", output.StandardError, StringComparison.Ordinal);
    }

    private static async Task<string> ProblemDetailAsync(HttpResponseMessage response)
    {
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return doc.RootElement.GetProperty("detail").GetString()!;
    }
}

/// <summary>An agent whose QEMU binary is missing refuses to start VMs, and says why.</summary>
public sealed class MissingQemuTests : IAsyncLifetime
{
    private AgentProcess _agent = null!;

    public async Task InitializeAsync() => _agent = await AgentProcess.StartAsync("--qemu", "/nonexistent/qemu-system-x86_64");

    public async Task DisposeAsync() => await _agent.DisposeAsync();

    [Fact]
    public async Task Start_fails_with_an_environment_error_and_the_vm_stays_stopped()
    {
        var vm = await GuestVm.CreateAsync(_agent, "noqemu", start: false);
        var start = await _agent.FerryAsync("vm", "start", "noqemu");
        Assert.Equal(7, start.ExitCode);
        Assert.Contains("QEMU binary '/nonexistent/qemu-system-x86_64' not found", start.StandardError, StringComparison.Ordinal);
        var shown = await _agent.VmAsync("noqemu");
        Assert.Equal("stopped", shown.GetProperty("state").GetString());
        Assert.Equal("stopped", shown.GetProperty("desired").GetString());
        Assert.False(File.Exists(Path.Combine(_agent.DataDirectory, "vms", vm.Name, "qemu.pid")));
    }
}
