using CsCheck;
using Ferry.Lab;

namespace Ferry.Tests.Lab;

public class LabLayoutTests
{
    [Fact]
    public void Hosts_get_namespaces_addresses_links_and_directories_from_the_lab()
    {
        var lab = LabLayout.Create("demo", 7, 3, "/srv/lab").Value;
        Assert.Equal("fl-demo", lab.Bridge);
        Assert.Equal(("10.77.7.1", "10.77.7.0/24"), (lab.BridgeAddress, lab.Subnet));
        var h2 = lab["h2"];
        Assert.Equal(("ferry-demo-h2", "10.77.7.12", "fl-demo-2"), (h2.Namespace, h2.Address, h2.Link));
        Assert.Equal(Path.Combine("/srv/lab", "h2", "data"), h2.DataDirectory);
        Assert.Equal("http://10.77.7.12:7480", h2.ApiUrl);
        Assert.Contains("10.77.7.12:7470", h2.AgentArguments());
        Assert.Equal(["h1", "h2", "h3"], lab.Hosts.Select(h => h.Name));
    }

    [Theory]
    [InlineData("")]
    [InlineData("Lab")]
    [InlineData("1lab")]
    [InlineData("toolongname")]
    [InlineData("a-b")]
    public void Names_that_would_not_fit_an_interface_name_are_refused(string name) =>
        Assert.Equal(ErrorCode.InvalidArgument, LabLayout.Create(name, 1, 3, "/x").Error!.Code);

    [Theory]
    [InlineData(0, 3)]
    [InlineData(251, 3)]
    [InlineData(1, 0)]
    [InlineData(1, 33)]
    public void Networks_and_sizes_out_of_range_are_refused(int network, int nodes) =>
        Assert.Equal(ErrorCode.InvalidArgument, LabLayout.Create("lab", network, nodes, "/x").Error!.Code);

    [Fact]
    public void Every_interface_name_fits_the_kernel_limit_for_the_longest_names() =>
        Gen.Select(Gen.Char["abcdefghijklmnopqrstuvwxyz"].Array[1, 8], Gen.Int[1, LabLayout.MaxNetwork], Gen.Int[1, LabLayout.MaxHosts])
            .Sample((name, network, nodes) =>
            {
                var lab = LabLayout.Create(new string(name), network, nodes, "/x").Value;
                return lab.Bridge.Length <= 15 && lab.Hosts.All(h => h.Link.Length <= 15) && lab.Hosts.Select(h => h.Address).Distinct().Count() == nodes;
            });
}

public class LabPartitionTests
{
    private static readonly LabLayout Lab = LabLayout.Create("lab", 1, 5, "/x").Value;

    [Fact]
    public void A_group_is_cut_from_every_other_host_both_ways()
    {
        var cuts = LabPartition.Cuts(Lab, ["h1", "h2"], []).Value;
        Assert.Equal(12, cuts.Count);
        Assert.Contains(new LinkCut(Lab["h1"], Lab["h5"]), cuts);
        Assert.Contains(new LinkCut(Lab["h5"], Lab["h1"]), cuts);
        Assert.DoesNotContain(cuts, c => c.From.Name is "h1" or "h2" && c.To.Name is "h1" or "h2");
    }

    [Fact]
    public void From_limits_the_other_side()
    {
        var cuts = LabPartition.Cuts(Lab, ["h1"], ["h3"]).Value;
        Assert.Equal([("h1", "h3"), ("h3", "h1")], cuts.Select(c => (c.From.Name, c.To.Name)));
    }

    [Fact]
    public void Cuts_are_symmetric_and_never_inside_a_side() =>
        Gen.Int[1, 5].Select(i => "h" + i).HashSet[1, 4].Sample(group =>
        {
            var cuts = LabPartition.Cuts(Lab, group, []).Value;
            return cuts.All(c => cuts.Contains(new LinkCut(c.To, c.From)))
                && cuts.All(c => group.Contains(c.From.Name) != group.Contains(c.To.Name))
                && cuts.Count == 2 * group.Count * (5 - group.Count);
        });

    [Theory]
    [InlineData(new string[0], new string[0], ErrorCode.InvalidArgument)]
    [InlineData(new[] { "h1", "h2", "h3", "h4", "h5" }, new string[0], ErrorCode.InvalidArgument)]
    [InlineData(new[] { "h1" }, new[] { "h1" }, ErrorCode.InvalidArgument)]
    [InlineData(new[] { "h9" }, new string[0], ErrorCode.NotFound)]
    [InlineData(new[] { "h1" }, new[] { "x" }, ErrorCode.NotFound)]
    public void Impossible_partitions_are_refused(string[] group, string[] from, ErrorCode code) =>
        Assert.Equal(code, LabPartition.Cuts(Lab, group, from).Error!.Code);
}

public class LinkShapeTests
{
    [Fact]
    public void A_rate_alone_is_a_token_bucket_and_delay_or_loss_need_netem()
    {
        Assert.Equal(["tbf", "rate", "10mbit", "burst", "64kb", "latency", "200ms"], LinkShape.Create(null, null, "10mbit").Value.Qdisc());
        Assert.Equal(["netem", "delay", "50ms", "loss", "2.5%", "rate", "1gbit"], LinkShape.Create(TimeSpan.FromMilliseconds(50), 2.5, "1gbit").Value.Qdisc());
    }

    [Theory]
    [InlineData(null, null, null)]
    [InlineData(-1, null, null)]
    [InlineData(20000, null, null)]
    [InlineData(null, 101.0, null)]
    [InlineData(null, -0.5, null)]
    [InlineData(null, null, "fast")]
    [InlineData(null, null, "10 mbit")]
    public void Bad_shapes_are_refused(int? delayMs, double? loss, string? rate) =>
        Assert.Equal(ErrorCode.InvalidArgument, LinkShape.Create(delayMs is { } d ? TimeSpan.FromMilliseconds(d) : null, loss, rate).Error!.Code);
}

public sealed class LabRegistryTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    [Fact]
    public async Task Labs_claim_their_name_and_the_lowest_free_network()
    {
        var registry = new LabRegistry(_dir.Path);
        var a = (await registry.ClaimAsync("a", 3, "/x/a", CancellationToken.None)).Value;
        var b = (await registry.ClaimAsync("b", 1, "/x/b", CancellationToken.None)).Value;
        Assert.Equal((1, 2), (a.Network, b.Network));
        Assert.Equal(ErrorCode.Conflict, (await registry.ClaimAsync("a", 3, "/x/a", CancellationToken.None)).Error!.Code);

        registry.Release("a");
        Assert.Equal(ErrorCode.NotFound, registry.Get("a").Error!.Code);
        Assert.Equal(1, (await registry.ClaimAsync("c", 2, "/x/c", CancellationToken.None)).Value.Network);
        Assert.Equal(["b", "c"], registry.List().Select(r => r.Name));
    }

    [Fact]
    public async Task Labs_claimed_at_the_same_time_get_different_networks()
    {
        var registry = new LabRegistry(_dir.Path);
        var claims = await Task.WhenAll(Enumerable.Range(0, 8).Select(i => Task.Run(() => registry.ClaimAsync("l" + i, 1, "/x", CancellationToken.None))));
        Assert.Equal(8, claims.Select(c => c.Value.Network).Distinct().Count());
    }

    public void Dispose() => _dir.Dispose();
}
