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

    [Fact]
    public async Task The_copy_in_step_when_another_was_lost_takes_over_from_the_killed_primary_and_brings_both_back()
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

            // c is lost: a starts a new generation for the writes c misses, and b, in step, moves on with it.
            await c.KillAsync();
            await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(a), "write -P 0x42 4M 64k");

            // a dies; b takes over at epoch 2 and writes without either.
            await a.KillAsync();
            await b.FerryJsonAsync("volume", "promote", ReplicatedPair.Volume, "--epoch", "2");
            await b.FerryJsonAsync("volume", "replicate", ReplicatedPair.Volume, "--peer", $"host-a=127.0.0.1:{ports[0]}", "--peer", $"host-c=127.0.0.1:{ports[2]}");
            await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(b), "write -P 0x43 8M 64k");

            // Both come back as b's secondaries: a (which crashed as primary) misses b's writes since the
            // generation they shared, c misses more; neither looks newer than b, nor like a split brain.
            await a.LaunchAsync();
            await a.FerryJsonAsync("volume", "demote", ReplicatedPair.Volume);
            await a.FerryJsonAsync("volume", "replicate", ReplicatedPair.Volume, "--peer", $"host-b=127.0.0.1:{ports[1]}");
            await c.LaunchAsync();
            await c.FerryJsonAsync("volume", "replicate", ReplicatedPair.Volume, "--peer", $"host-b=127.0.0.1:{ports[1]}");
            try
            {
                await WaitAllConnectedAsync(b);
            }
            catch (TimeoutException e)
            {
                throw new TimeoutException($"{e.Message}\n{await ReplicatedPair.ShowAsync(b)}\nb: {string.Join('\n', b.Log.Split('\n').TakeLast(40))}\na: {string.Join('\n', a.Log.Split('\n').TakeLast(20))}", e);
            }
            var data = await File.ReadAllBytesAsync(ReplicatedPair.DataFile(b));
            Assert.Equal(data, await File.ReadAllBytesAsync(ReplicatedPair.DataFile(a)));
            Assert.Equal(data, await File.ReadAllBytesAsync(ReplicatedPair.DataFile(c)));
            Assert.Equal(0x42, data[4 << 20]);
            Assert.Equal(0x43, data[8 << 20]);
            Assert.DoesNotContain("split brain", b.Log, StringComparison.Ordinal);
            Assert.DoesNotContain("holds newer data", b.Log, StringComparison.Ordinal);
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
