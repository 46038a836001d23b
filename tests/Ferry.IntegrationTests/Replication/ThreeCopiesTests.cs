using Ferry.IntegrationTests.Nbd;

namespace Ferry.IntegrationTests.Replication;

/// <summary>One primary and two secondaries: losing one copy leaves the other replicating, and the lost one catches up.</summary>
public sealed class ThreeCopiesTests
{
    [Fact]
    public async Task A_volume_on_three_hosts_keeps_replicating_to_one_while_the_other_is_away_and_all_end_identical()
    {
        await using var hosts = await ThreeHosts.StartAsync();
        var (a, b, c) = (hosts.A, hosts.B, hosts.C);
        await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(a), "write -P 0x41 0 1M");

        await c.KillAsync();
        await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(a), "write -P 0x42 4M 64k");
        var peers = Peers(await ReplicatedPair.ShowAsync(a));
        Assert.Equal("connected", peers["host-b"].GetProperty("connection").GetString());
        Assert.True(peers["host-c"].GetProperty("outdated").GetBoolean(), "the lost copy is outdated before writes go on without it");
        Assert.Equal(await File.ReadAllBytesAsync(ReplicatedPair.DataFile(a)), await File.ReadAllBytesAsync(ReplicatedPair.DataFile(b)));

        await c.LaunchAsync();
        await WaitAllConnectedAsync(a);
        var data = await File.ReadAllBytesAsync(ReplicatedPair.DataFile(a));
        Assert.Equal(data, await File.ReadAllBytesAsync(ReplicatedPair.DataFile(b)));
        Assert.Equal(data, await File.ReadAllBytesAsync(ReplicatedPair.DataFile(c)));
    }

    [Fact]
    public async Task Each_copy_that_comes_back_is_sent_only_what_it_missed_not_what_a_copy_away_longer_missed()
    {
        await using var hosts = await ThreeHosts.StartAsync();
        var (a, b, c) = (hosts.A, hosts.B, hosts.C);
        var uri = ReplicatedPair.NbdUri(a);
        await NbdTools.QemuIoAsync(uri, "write -P 0x41 0 1M");

        await c.KillAsync();
        await NbdTools.QemuIoAsync(uri, "write -P 0x42 4M 256k");
        await b.KillAsync();
        await NbdTools.QemuIoAsync(uri, "write -P 0x43 8M 64k");

        // b missed 64 KiB, c 320 KiB: each gets its own, though the volume's bitmap marks the 320 KiB until both are back.
        await b.LaunchAsync();
        await Wait.UntilAsync(async () => Peers(await ReplicatedPair.ShowAsync(a))["host-b"].GetProperty("connection").GetString() == "connected", TimeSpan.FromSeconds(60), "b back in sync");
        var back = Peers(await ReplicatedPair.ShowAsync(a));
        Assert.True(back["host-b"].GetProperty("resyncBytesSent").GetInt64() == 64 << 10, back["host-b"].ToString());
        Assert.Contains("only the blocks it missed", back["host-b"].GetProperty("decision").GetString(), StringComparison.Ordinal);

        await c.LaunchAsync();
        await WaitAllConnectedAsync(a);
        Assert.Equal(320 << 10, Peers(await ReplicatedPair.ShowAsync(a))["host-c"].GetProperty("resyncBytesSent").GetInt64());
        var data = await File.ReadAllBytesAsync(ReplicatedPair.DataFile(a));
        Assert.Equal(data, await File.ReadAllBytesAsync(ReplicatedPair.DataFile(b)));
        Assert.Equal(data, await File.ReadAllBytesAsync(ReplicatedPair.DataFile(c)));
        Assert.Equal(0, (await ReplicatedPair.ShowAsync(a)).GetProperty("copy").GetProperty("dirtyBytes").GetInt64());
    }

    [Fact]
    public async Task A_resync_cut_short_while_another_copy_resyncs_ends_later_with_every_block()
    {
        await using var hosts = await ThreeHosts.StartAsync("64M");
        var (a, b, c) = (hosts.A, hosts.B, hosts.C);
        await b.KillAsync();
        await c.KillAsync();
        await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(a), [.. Enumerable.Range(0, 48).Select(i => $"write -P {0x50 + i} {i}M 1M")]);

        // Restarted, the primary knows only the volume's bitmap: both copies resync from it, side by side, slowly.
        await a.KillAsync();
        await a.LaunchAsync();
        await a.FerryJsonAsync("volume", "replicate", ReplicatedPair.Volume, "--peer", hosts.Peer(1), "--peer", hosts.Peer(2), "--resync-rate", "8M");
        await b.LaunchAsync();
        await c.LaunchAsync();
        await Wait.UntilAsync(
            async () => Peers(await ReplicatedPair.ShowAsync(a)).Values.All(p => p.TryGetProperty("resync", out var r) && r.GetProperty("doneBytes").GetInt64() >= 12 << 20),
            TimeSpan.FromSeconds(30), "both copies a quarter through their resync");

        // b hangs (not long enough to be given up), then dies, while c goes on past the 8 MiB b has in flight:
        // what c gets must stay marked for b.
        await b.PauseAsync();
        await Task.Delay(TimeSpan.FromSeconds(1.8));
        await b.KillAsync();
        await Wait.UntilAsync(async () => Peers(await ReplicatedPair.ShowAsync(a))["host-c"].GetProperty("connection").GetString() == "connected", TimeSpan.FromSeconds(60), "c in sync");

        await a.FerryJsonAsync("volume", "replicate", ReplicatedPair.Volume, "--peer", hosts.Peer(1), "--peer", hosts.Peer(2));
        await b.LaunchAsync();
        await WaitAllConnectedAsync(a);
        var data = await File.ReadAllBytesAsync(ReplicatedPair.DataFile(a));
        Assert.Equal(data, await File.ReadAllBytesAsync(ReplicatedPair.DataFile(c)));
        Assert.Equal(data, await File.ReadAllBytesAsync(ReplicatedPair.DataFile(b)));
    }

    [Fact]
    public async Task The_copy_in_step_when_another_was_lost_takes_over_from_the_killed_primary_and_brings_both_back()
    {
        await using var hosts = await ThreeHosts.StartAsync();
        var (a, b, c) = (hosts.A, hosts.B, hosts.C);
        await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(a), "write -P 0x41 0 1M");

        // c is lost: a starts a new generation for the writes c misses, and b, in step, moves on with it.
        await c.KillAsync();
        await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(a), "write -P 0x42 4M 64k");

        // a dies; b takes over at epoch 2 and writes without either.
        await a.KillAsync();
        await b.FerryJsonAsync("volume", "promote", ReplicatedPair.Volume, "--epoch", "2");
        await b.FerryJsonAsync("volume", "replicate", ReplicatedPair.Volume, "--peer", hosts.Peer(0), "--peer", hosts.Peer(2));
        await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(b), "write -P 0x43 8M 64k");

        // Both come back as b's secondaries: a (which crashed as primary) misses b's writes since the
        // generation they shared, c misses more; neither looks newer than b, nor like a split brain.
        await a.LaunchAsync();
        await a.FerryJsonAsync("volume", "demote", ReplicatedPair.Volume);
        await a.FerryJsonAsync("volume", "replicate", ReplicatedPair.Volume, "--peer", hosts.Peer(1));
        await c.LaunchAsync();
        await c.FerryJsonAsync("volume", "replicate", ReplicatedPair.Volume, "--peer", hosts.Peer(1));
        try
        {
            await WaitAllConnectedAsync(b);
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message}\n{await ReplicatedPair.ShowAsync(b)}\nb: {string.Join('\n', b.Log.Split('\n').TakeLast(40))}", e);
        }

        var data = await File.ReadAllBytesAsync(ReplicatedPair.DataFile(b));
        Assert.Equal(data, await File.ReadAllBytesAsync(ReplicatedPair.DataFile(a)));
        Assert.Equal(data, await File.ReadAllBytesAsync(ReplicatedPair.DataFile(c)));
        Assert.Equal(0x42, data[4 << 20]);
        Assert.Equal(0x43, data[8 << 20]);
        Assert.DoesNotContain("split brain", b.Log, StringComparison.Ordinal);
        Assert.DoesNotContain("holds newer data", b.Log, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_second_primary_writes_to_the_third_copy_too_which_follows_it_after_the_handoff_without_a_resync()
    {
        await using var hosts = await ThreeHosts.StartAsync();
        var (a, b, c) = (hosts.A, hosts.B, hosts.C);
        const string Volume = ReplicatedPair.Volume;
        await AllowTwoPrimariesAsync(hosts);

        var joined = (await b.FerryJsonAsync("volume", "promote", Volume, "--dual")).GetProperty("message").GetString();
        Assert.Contains("primary beside host-a", joined, StringComparison.Ordinal);
        Assert.Contains("the copy on host-c is linked too", joined, StringComparison.Ordinal);
        await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(a), "write -P 0x11 0 1M");
        await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(b), "write -P 0x22 1M 1M");
        var third = (await ReplicatedPair.ShowAsync(c)).GetProperty("copy");
        Assert.StartsWith("host-a ", third.GetProperty("incoming").GetProperty("from").GetString(), StringComparison.Ordinal);
        Assert.StartsWith("host-b ", third.GetProperty("secondIncoming").GetProperty("from").GetString(), StringComparison.Ordinal);
        var data = await File.ReadAllBytesAsync(ReplicatedPair.DataFile(a));
        Assert.Equal(data, await File.ReadAllBytesAsync(ReplicatedPair.DataFile(b)));
        Assert.Equal(data, await File.ReadAllBytesAsync(ReplicatedPair.DataFile(c)));

        // The handoff ends: a steps down, and c, which got every write of both, simply follows b.
        await a.FerryJsonAsync("volume", "demote", Volume);
        await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(b), "write -P 0x33 2M 1M");
        await WaitAllConnectedAsync(b);
        third = (await ReplicatedPair.ShowAsync(c)).GetProperty("copy");
        Assert.StartsWith("host-b ", third.GetProperty("incoming").GetProperty("from").GetString(), StringComparison.Ordinal);
        Assert.Equal(0, third.GetProperty("incoming").GetProperty("resyncBytesReceived").GetInt64());
        Assert.False(third.TryGetProperty("secondIncoming", out _), third.ToString());
        data = await File.ReadAllBytesAsync(ReplicatedPair.DataFile(b));
        Assert.Equal(0x33, data[2 << 20]);
        Assert.Equal(data, await File.ReadAllBytesAsync(ReplicatedPair.DataFile(a)));
        Assert.Equal(data, await File.ReadAllBytesAsync(ReplicatedPair.DataFile(c)));
        Assert.All(Peers(await ReplicatedPair.ShowAsync(b)).Values, p => Assert.Equal(0, p.GetProperty("resyncBytesSent").GetInt64()));
    }

    [Fact]
    public async Task A_handoff_without_the_third_copy_goes_on_and_the_third_copy_gets_what_both_primaries_wrote_when_back()
    {
        await using var hosts = await ThreeHosts.StartAsync();
        var (a, b, c) = (hosts.A, hosts.B, hosts.C);
        const string Volume = ReplicatedPair.Volume;
        await AllowTwoPrimariesAsync(hosts);
        await c.KillAsync();
        await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(a), "write -P 0x11 0 64k");

        var joined = (await b.FerryJsonAsync("volume", "promote", Volume, "--dual")).GetProperty("message").GetString();
        Assert.Contains("the copy on host-c is not linked", joined, StringComparison.Ordinal);

        // Each primary writes in turn without c, as a migration's source and then its target do.
        await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(a), "write -P 0x22 1M 64k");
        await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(b), "write -P 0x33 2M 64k");
        await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(a), "read -P 0x33 2M 64k");
        await a.FerryJsonAsync("volume", "demote", Volume);
        await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(b), "write -P 0x44 3M 64k");

        await c.LaunchAsync();
        await c.FerryJsonAsync("volume", "replicate", Volume, "--peer", hosts.Peer(1));
        await WaitAllConnectedAsync(b);
        var data = await File.ReadAllBytesAsync(ReplicatedPair.DataFile(b));
        Assert.Equal(data, await File.ReadAllBytesAsync(ReplicatedPair.DataFile(a)));
        Assert.Equal(data, await File.ReadAllBytesAsync(ReplicatedPair.DataFile(c)));
        Assert.Equal([0x11, 0x22, 0x33, 0x44], new[] { data[0], data[1 << 20], data[2 << 20], data[3 << 20] });
        Assert.DoesNotContain("split brain", b.Log, StringComparison.Ordinal);
    }

    private static Dictionary<string, System.Text.Json.JsonElement> Peers(System.Text.Json.JsonElement shown) =>
        shown.GetProperty("copy").GetProperty("peers").EnumerateArray().ToDictionary(p => p.GetProperty("host").GetString()!);

    /// <summary>a (the primary) and b open to two primaries, each with the other two copies as peers.</summary>
    private static async Task AllowTwoPrimariesAsync(ThreeHosts hosts)
    {
        await hosts.A.FerryJsonAsync("volume", "replicate", ReplicatedPair.Volume, "--peer", hosts.Peer(1), "--peer", hosts.Peer(2), "--allow-two-primaries");
        await hosts.B.FerryJsonAsync("volume", "replicate", ReplicatedPair.Volume, "--peer", hosts.Peer(0), "--peer", hosts.Peer(2), "--allow-two-primaries");
        await WaitAllConnectedAsync(hosts.A);
    }

    private static async Task WaitAllConnectedAsync(AgentProcess primary) =>
        await Wait.UntilAsync(
            async () => (await ReplicatedPair.ShowAsync(primary)).GetProperty("copy").GetProperty("peers").EnumerateArray()
                .All(p => p.GetProperty("connection").GetString() == "connected"),
            TimeSpan.FromSeconds(60),
            "every peer copy to be connected and in sync");

    /// <summary>Agents host-a (primary), host-b and host-c sharing a file authority, with the volume replicated from a to both, in sync.</summary>
    private sealed class ThreeHosts : IAsyncDisposable
    {
        private static readonly string[] Names = ["host-a", "host-b", "host-c"];
        private readonly string _shared = Path.Combine(Path.GetTempPath(), "ferry-it-auth-" + Guid.NewGuid().ToString("N")[..8]);
        private readonly int[] _ports = [Processes.FreeTcpPort(), Processes.FreeTcpPort(), Processes.FreeTcpPort()];
        private readonly List<AgentProcess> _agents = [];

        public AgentProcess A => _agents[0];

        public AgentProcess B => _agents[1];

        public AgentProcess C => _agents[2];

        /// <summary>The --peer argument naming host i at its replication address.</summary>
        public string Peer(int i) => $"{Names[i]}=127.0.0.1:{_ports[i]}";

        public static async Task<ThreeHosts> StartAsync(string size = "16M")
        {
            var hosts = new ThreeHosts();
            try
            {
                Directory.CreateDirectory(hosts._shared);
                for (var i = 0; i < 3; i++)
                {
                    hosts._agents.Add(await AgentProcess.StartAsync(
                        "--host-name", Names[i], "--replication-listen", $"127.0.0.1:{hosts._ports[i]}", "--replication-authority", Path.Combine(hosts._shared, "authority.json")));
                }

                var id = (await hosts.A.FerryJsonAsync("volume", "create", ReplicatedPair.Volume, "--size", size)).GetProperty("id").GetString()!;
                foreach (var secondary in new[] { hosts.B, hosts.C })
                {
                    await secondary.FerryJsonAsync("volume", "create", ReplicatedPair.Volume, "--size", size, "--copy-of", id);
                    await secondary.FerryJsonAsync("volume", "replicate", ReplicatedPair.Volume, "--peer", hosts.Peer(0));
                }

                await hosts.A.FerryJsonAsync("volume", "replicate", ReplicatedPair.Volume, "--peer", hosts.Peer(1), "--peer", hosts.Peer(2));
                await WaitAllConnectedAsync(hosts.A);
                return hosts;
            }
            catch
            {
                await hosts.DisposeAsync();
                throw;
            }
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var agent in _agents)
            {
                await agent.DisposeAsync();
            }

            if (Directory.Exists(_shared))
            {
                Directory.Delete(_shared, recursive: true);
            }
        }
    }
}
