using System.Text.Json;

namespace Ferry.IntegrationTests.Replication;

/// <summary>
/// Two real agents, hosts "host-a" and "host-b", each with a replication listener on loopback and one
/// shared authority file (the stand-in for the cluster state), with volume "vol" replicated from A to B.
/// </summary>
public sealed class ReplicatedPair : IAsyncDisposable
{
    public const string Volume = "vol";

    private readonly string _shared;

    private ReplicatedPair(string shared, AgentProcess a, AgentProcess b, int portA, int portB)
    {
        _shared = shared;
        A = a;
        B = b;
        PortA = portA;
        PortB = portB;
    }

    public AgentProcess A { get; }

    public AgentProcess B { get; }

    public int PortA { get; }

    public int PortB { get; }

    /// <param name="size">The volume's size.</param>
    /// <param name="hostArguments">More agent arguments for a host ("host-a", "host-b"), e.g. its TLS files.</param>
    public static async Task<ReplicatedPair> StartAsync(string size = "64M", Func<string, string[]>? hostArguments = null)
    {
        var shared = Path.Combine(Path.GetTempPath(), "ferry-it-auth-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(shared);
        var authority = Path.Combine(shared, "authority.json");
        int portA = Processes.FreeTcpPort(), portB = Processes.FreeTcpPort();
        string[] Arguments(string host, int port) =>
            ["--host-name", host, "--replication-listen", $"127.0.0.1:{port}", "--replication-authority", authority, .. hostArguments?.Invoke(host) ?? []];
        var a = await AgentProcess.StartAsync(Arguments("host-a", portA));
        var b = await AgentProcess.StartAsync(Arguments("host-b", portB));
        var pair = new ReplicatedPair(shared, a, b, portA, portB);
        try
        {
            var created = await a.FerryJsonAsync("volume", "create", Volume, "--size", size);
            var id = created.GetProperty("id").GetString()!;
            await b.FerryJsonAsync("volume", "create", Volume, "--size", size, "--copy-of", id);
            await b.FerryJsonAsync("volume", "replicate", Volume, "--peer", $"host-a=127.0.0.1:{portA}");
            await a.FerryJsonAsync("volume", "replicate", Volume, "--peer", $"host-b=127.0.0.1:{portB}");
            await WaitInSyncAsync(a);
            return pair;
        }
        catch
        {
            await pair.DisposeAsync();
            throw;
        }
    }

    public static string NbdUri(AgentProcess agent) => $"nbd+unix:///{Volume}?socket={Path.Combine(agent.DataDirectory, "nbd.sock")}";

    public static string DataFile(AgentProcess agent) => Path.Combine(agent.DataDirectory, "volumes", Volume, "data");

    public static async Task<JsonElement> ShowAsync(AgentProcess agent) => await agent.FerryJsonAsync("volume", "show", Volume);

    public static async Task<JsonElement> PeerAsync(AgentProcess primary) =>
        (await ShowAsync(primary)).GetProperty("copy").GetProperty("peers")[0];

    /// <summary>Until the primary's every peer is connected and its resync (if any) finished.</summary>
    public static async Task WaitInSyncAsync(AgentProcess primary, int seconds = 60) =>
        await Wait.UntilAsync(
            async () => (await PeerAsync(primary)).GetProperty("connection").GetString() == "connected",
            TimeSpan.FromSeconds(seconds),
            "the peer copy to be connected and in sync");

    public async ValueTask DisposeAsync()
    {
        await A.DisposeAsync();
        await B.DisposeAsync();
        Directory.Delete(_shared, recursive: true);
    }
}
