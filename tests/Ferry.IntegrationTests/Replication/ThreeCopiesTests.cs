using Ferry.IntegrationTests.Nbd;

namespace Ferry.IntegrationTests.Replication;

/// <summary>One primary and two secondaries: losing one copy leaves the other replicating, and the lost one catches up.</summary>
public sealed class ThreeCopiesTests
{
    [Fact]
    public async Task A_volume_on_three_hosts_keeps_replicating_to_one_while_the_other_is_away_and_all_end_identical()
    {
        var shared = Path.Combine(Path.GetTempPath(), "ferry-it-auth-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(shared);
        var authority = Path.Combine(shared, "authority.json");
        int[] ports = [Processes.FreeTcpPort(), Processes.FreeTcpPort(), Processes.FreeTcpPort()];
        string[] hosts = ["host-a", "host-b", "host-c"];
        var agents = new List<AgentProcess>();
        try
        {
            for (var i = 0; i < 3; i++)
            {
                agents.Add(await AgentProcess.StartAsync("--host-name", hosts[i], "--replication-listen", $"127.0.0.1:{ports[i]}", "--replication-authority", authority));
            }

            var (a, b, c) = (agents[0], agents[1], agents[2]);
            var id = (await a.FerryJsonAsync("volume", "create", ReplicatedPair.Volume, "--size", "16M")).GetProperty("id").GetString()!;
            foreach (var secondary in new[] { b, c })
            {
                await secondary.FerryJsonAsync("volume", "create", ReplicatedPair.Volume, "--size", "16M", "--copy-of", id);
                await secondary.FerryJsonAsync("volume", "replicate", ReplicatedPair.Volume, "--peer", $"host-a=127.0.0.1:{ports[0]}");
            }

            await a.FerryJsonAsync("volume", "replicate", ReplicatedPair.Volume, "--peer", $"host-b=127.0.0.1:{ports[1]}", "--peer", $"host-c=127.0.0.1:{ports[2]}");
            await WaitAllConnectedAsync(a);
            await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(a), "write -P 0x41 0 1M");

            await c.KillAsync();
            await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(a), "write -P 0x42 4M 64k");
            var peers = (await ReplicatedPair.ShowAsync(a)).GetProperty("copy").GetProperty("peers").EnumerateArray().ToDictionary(p => p.GetProperty("host").GetString()!);
            Assert.Equal("connected", peers["host-b"].GetProperty("connection").GetString());
            Assert.True(peers["host-c"].GetProperty("outdated").GetBoolean(), "the lost copy is outdated before writes go on without it");
            Assert.Equal(await File.ReadAllBytesAsync(ReplicatedPair.DataFile(a)), await File.ReadAllBytesAsync(ReplicatedPair.DataFile(b)));

            await c.LaunchAsync();
            await WaitAllConnectedAsync(a);
            var data = await File.ReadAllBytesAsync(ReplicatedPair.DataFile(a));
            Assert.Equal(data, await File.ReadAllBytesAsync(ReplicatedPair.DataFile(b)));
            Assert.Equal(data, await File.ReadAllBytesAsync(ReplicatedPair.DataFile(c)));
        }
        finally
        {
            foreach (var agent in agents)
            {
                await agent.DisposeAsync();
            }

            Directory.Delete(shared, recursive: true);
        }
    }

    private static async Task WaitAllConnectedAsync(AgentProcess primary) =>
        await Wait.UntilAsync(
            async () => (await ReplicatedPair.ShowAsync(primary)).GetProperty("copy").GetProperty("peers").EnumerateArray()
                .All(p => p.GetProperty("connection").GetString() == "connected"),
            TimeSpan.FromSeconds(60),
            "every peer copy to be connected and in sync");
}
