using System.Text.Json;

namespace Ferry.IntegrationTests.Lab;

/// <summary>
/// A `ferry lab` of a test's own: hosts h1..hN in network namespaces, each a real agent. Disposing
/// it runs `ferry lab down`, which kills every process in the lab's namespaces and removes them,
/// so a failing test leaves nothing behind.
/// </summary>
public sealed class TestLab : IAsyncDisposable
{
    private LabMember[] _hosts = [];
    private bool _down;

    private TestLab(string name, string directory)
    {
        Name = name;
        Directory = directory;
    }

    public string Name { get; }

    public string Directory { get; }

    public IReadOnlyList<LabMember> Hosts => _hosts;

    public LabMember this[string host] => Hosts.Single(h => h.Name == host);

    /// <summary>`ferry lab up`: <paramref name="nodes"/> hosts, the first <paramref name="members"/> of them (default all) a cluster.</summary>
    public static async Task<TestLab> UpAsync(int nodes, int? members = null, bool fence = false, string? hostMemory = null)
    {
        var name = "t" + Guid.NewGuid().ToString("N")[..7];
        var directory = Path.Combine(Path.GetTempPath(), "ferry-lab-" + name);
        string[] up =
        [
            "up", "--nodes", nodes.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--members", (members ?? nodes).ToString(System.Globalization.CultureInfo.InvariantCulture), "--dir", directory, "--output", "json",
            .. fence ? ["--fence"] : Array.Empty<string>(),
            .. hostMemory is null ? Array.Empty<string>() : ["--host-memory", hostMemory],
        ];
        var output = await LabAsync(name, up);
        Assert.True(output.ExitCode == 0, $"ferry lab up failed ({output.ExitCode}): {output.StandardError}");
        var view = JsonDocument.Parse(output.StandardOutput).RootElement;
        var lab = new TestLab(name, directory);
        lab._hosts = view.GetProperty("hosts").EnumerateArray().Select(h => new LabMember(
            lab,
            h.GetProperty("name").GetString()!,
            h.GetProperty("address").GetString()!,
            h.GetProperty("api").GetString()!,
            h.GetProperty("peerAddress").GetString()!,
            Path.Combine(directory, h.GetProperty("name").GetString()!, "data"))).ToArray();
        return lab;
    }

    /// <summary>Runs `ferry lab VERB ARGS` on this lab, whatever its outcome.</summary>
    public Task<ProcessOutput> TryRunAsync(params string[] args) => LabAsync(Name, args);

    /// <summary>Runs `ferry lab VERB ARGS` on this lab and requires it to succeed.</summary>
    public async Task<ProcessOutput> RunAsync(params string[] args)
    {
        var output = await LabAsync(Name, args);
        Assert.True(output.ExitCode == 0, $"ferry lab {string.Join(' ', args)} failed ({output.ExitCode}): {output.StandardError}");
        return output;
    }

    public Task KillAsync(string host) => RunAsync("kill", host);

    public Task StartAsync(string host) => RunAsync("start", host);

    public Task PauseAsync(string host) => RunAsync("pause", host);

    public Task ResumeAsync(string host) => RunAsync("resume", host);

    public Task PartitionAsync(params string[] hosts) => RunAsync(["partition", .. hosts]);

    public Task HealAsync() => RunAsync("heal");

    public async Task<JsonElement> StatusAsync() =>
        JsonDocument.Parse((await RunAsync("status", "--output", "json")).StandardOutput).RootElement.Clone();

    /// <summary>The last lines of a host's agent log, for failure messages.</summary>
    public string Log(string host, Func<string, bool>? which = null, int lines = 30)
    {
        var path = Path.Combine(Directory, host, "agent.log");
        return File.Exists(path) ? string.Join('\n', File.ReadLines(path).Where(which ?? (_ => true)).TakeLast(lines)) : "(no log)";
    }

    private static Task<ProcessOutput> LabAsync(string name, params string[] args) =>
        Processes.RunAsync("dotnet", [Repo.FerryDll, "lab", .. args, "--lab", name], TimeSpan.FromMinutes(3));

    /// <summary>`ferry lab down`; disposing afterwards does nothing.</summary>
    public async Task DownAsync()
    {
        if (!_down)
        {
            await RunAsync("down");
            _down = true;
        }
    }

    public async ValueTask DisposeAsync() => await DownAsync();
}

/// <summary>A host of a <see cref="TestLab"/> and the CLI pointed at its agent.</summary>
public sealed record LabMember(TestLab Lab, string Name, string Address, string Api, string PeerAddress, string DataDirectory)
{
    public string ConsensusAddress => $"{Address}:7470";

    public Task<ProcessOutput> FerryAsync(params string[] args) =>
        Processes.RunAsync("dotnet", [Repo.FerryDll, "--server", Api, .. args], TimeSpan.FromMinutes(3));

    public async Task<JsonElement> FerryJsonAsync(params string[] args)
    {
        var output = await FerryAsync([.. args, "--output", "json"]);
        Assert.True(output.ExitCode == 0, $"ferry {string.Join(' ', args)} on {Name} failed ({output.ExitCode}): {output.StandardError}\n{Lab.Log(Name)}");
        return JsonDocument.Parse(output.StandardOutput).RootElement.Clone();
    }

    public async Task<string> TokenAsync(params string[] args)
    {
        var output = await FerryAsync(["cluster", "join-token", .. args]);
        Assert.True(output.ExitCode == 0, $"join-token on {Name} failed: {output.StandardError}");
        return output.StandardOutput.Trim();
    }

    /// <summary>The cluster as this host sees it, without asking the leader.</summary>
    public Task<JsonElement> LocalStatusAsync() => FerryJsonAsync("cluster", "status", "--local");

    public Task<JsonElement> JoinAsync(LabMember via, string token) => FerryJsonAsync("node", "join", via.PeerAddress, "--token", token);
}
