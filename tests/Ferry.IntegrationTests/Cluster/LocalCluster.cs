using System.Text.Json;

namespace Ferry.IntegrationTests.Cluster;

/// <summary>Agents on this machine, each with its own host name and ports, made into one cluster through the CLI.</summary>
internal sealed class LocalCluster : IAsyncDisposable
{
    private readonly List<ClusterHost> _hosts = [];

    public IReadOnlyList<ClusterHost> Hosts => _hosts;

    public ClusterHost this[string name] => _hosts.Single(h => h.Name == name);

    /// <summary>Starts <paramref name="count"/> agents n1..nN, creates cluster <paramref name="name"/> on n1 and joins the others one by one.</summary>
    public static async Task<LocalCluster> FormAsync(int count, string name = "lab", string prefix = "n")
    {
        var cluster = new LocalCluster();
        try
        {
            for (var i = 1; i <= count; i++)
            {
                await cluster.StartHostAsync($"{prefix}{i}");
            }

            await cluster._hosts[0].FerryJsonAsync("cluster", "init", name);
            foreach (var host in cluster._hosts.Skip(1))
            {
                await JoinAsync(host, cluster._hosts[0]);
            }

            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    public async Task<ClusterHost> StartHostAsync(string name)
    {
        var consensus = Processes.FreeTcpPort();
        var peer = Processes.FreeTcpPort();
        var agent = await AgentProcess.StartAsync("--host-name", name, "--consensus-listen", $"127.0.0.1:{consensus}", "--peer-listen", $"127.0.0.1:{peer}");
        var host = new ClusterHost(name, agent, $"127.0.0.1:{consensus}", $"127.0.0.1:{peer}");
        _hosts.Add(host);
        return host;
    }

    /// <summary>A token from <paramref name="via"/>, then `node join` on <paramref name="host"/> through <paramref name="via"/>'s peer API.</summary>
    public static async Task<JsonElement> JoinAsync(ClusterHost host, ClusterHost via, string? token = null) =>
        await host.FerryJsonAsync("node", "join", via.PeerAddress, "--token", token ?? await via.TokenAsync());

    public async ValueTask DisposeAsync()
    {
        foreach (var host in _hosts)
        {
            await host.Agent.ResumeAsync();
            await host.Agent.DisposeAsync();
        }
    }
}

internal sealed record ClusterHost(string Name, AgentProcess Agent, string ConsensusAddress, string PeerAddress)
{
    public Task<JsonElement> FerryJsonAsync(params string[] args) => Agent.FerryJsonAsync(args);

    public Task<ProcessOutput> FerryAsync(params string[] args) => Agent.FerryAsync(args);

    public async Task<string> TokenAsync()
    {
        var output = await Agent.FerryAsync("cluster", "join-token");
        Assert.True(output.ExitCode == 0, $"join-token on {Name} failed: {output.StandardError}");
        return output.StandardOutput.Trim();
    }

    /// <summary>The cluster as this host sees it, without asking the leader.</summary>
    public Task<JsonElement> LocalStatusAsync() => FerryJsonAsync("cluster", "status", "--local");
}
