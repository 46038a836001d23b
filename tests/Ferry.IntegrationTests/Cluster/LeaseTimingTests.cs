using System.Globalization;

namespace Ferry.IntegrationTests.Cluster;

/// <summary>A cluster's lease timings are chosen when it is made, and its hosts hold their leases by them.</summary>
public sealed class LeaseTimingTests
{
    [Fact]
    public async Task A_cluster_made_with_longer_leases_shows_them_and_its_host_holds_its_lease_by_them()
    {
        await using var agent = await AgentProcess.StartAsync("--consensus-listen", $"127.0.0.1:{Processes.FreeTcpPort()}");
        var made = await agent.FerryJsonAsync("cluster", "init", "c1", "--lease-renewal", "1s", "--lease", "6s", "--lease-margin", "2s");
        var leases = made.GetProperty("leases");
        Assert.Equal(("00:00:01", "00:00:06", "00:00:02"), (leases.GetProperty("renewal").GetString(), leases.GetProperty("lease").GetString(), leases.GetProperty("margin").GetString()));
        Assert.Contains("a silent host failed after 8 s", (await agent.FerryAsync("cluster", "status")).StandardOutput, StringComparison.Ordinal);

        // The lease record the watchdog reads: the host fences itself 6 s after each acknowledged renewal was sent.
        var record = Path.Combine(agent.DataDirectory, "lease");
        await Wait.UntilAsync(() => Task.FromResult(File.Exists(record)), TimeSpan.FromSeconds(30), "the first acknowledged renewal");
        var fields = (await File.ReadAllTextAsync(record)).Split(' ');
        var held = TimeSpan.FromTicks(long.Parse(fields[2], CultureInfo.InvariantCulture) - long.Parse(fields[1], CultureInfo.InvariantCulture));
        Assert.Equal(TimeSpan.FromSeconds(6), held);
    }
}
