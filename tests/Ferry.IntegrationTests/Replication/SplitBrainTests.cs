using Ferry.IntegrationTests.Nbd;

namespace Ferry.IntegrationTests.Replication;

/// <summary>
/// Two primaries that both wrote while apart: the split is found when they meet again, stays until an
/// operator names the copy to discard, and then the discarded copy becomes byte-identical to the kept one.
/// </summary>
public sealed class SplitBrainTests
{
    [Theory]
    [InlineData("host-a")]
    [InlineData("host-b")]
    public async Task Split_brain_is_detected_on_reconnect_and_resolved_by_discarding_the_named_copy(string discarded)
    {
        await using var pair = await ReplicatedPair.StartAsync("16M");

        // A goes on alone (B is outdated), then B is forced primary at a higher epoch and writes too.
        await pair.A.FerryJsonAsync("volume", "disconnect", ReplicatedPair.Volume);
        await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(pair.A), "write -P 0xaa 0 64k");
        await pair.B.FerryJsonAsync("volume", "promote", ReplicatedPair.Volume, "--epoch", "5", "--force");
        await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(pair.B), "write -P 0xbb 1M 8k");

        // They meet again with one side secondary: the kept side decides, and refuses to sync.
        var (kept, lost) = discarded == "host-a" ? (pair.B, pair.A) : (pair.A, pair.B);
        await lost.FerryJsonAsync("volume", "demote", ReplicatedPair.Volume);
        if (kept == pair.A)
        {
            // A's epoch (0) is stale now: it comes back as primary only by a promotion above B's.
            await pair.A.FerryJsonAsync("volume", "demote", ReplicatedPair.Volume);
            var refused = await pair.A.FerryAsync("volume", "promote", ReplicatedPair.Volume, "--epoch", "6");
            Assert.Contains("Outdated", refused.StandardError, StringComparison.Ordinal);
            await pair.A.FerryJsonAsync("volume", "promote", ReplicatedPair.Volume, "--epoch", "6", "--force");
        }

        await kept.FerryJsonAsync("volume", "connect", ReplicatedPair.Volume);
        await Wait.UntilAsync(
            async () => (await ReplicatedPair.PeerAsync(kept)).GetProperty("connection").GetString() == "stand-alone",
            TimeSpan.FromSeconds(30),
            "the primary to stop at the split brain");
        var peer = await ReplicatedPair.PeerAsync(kept);
        Assert.Contains("split", peer.GetProperty("reason").GetString(), StringComparison.OrdinalIgnoreCase);
        await Task.Delay(TimeSpan.FromSeconds(2)); // still split: nothing is resolved silently
        Assert.Equal("stand-alone", (await ReplicatedPair.PeerAsync(kept)).GetProperty("connection").GetString());
        Assert.NotEqual(await File.ReadAllBytesAsync(ReplicatedPair.DataFile(kept)), await File.ReadAllBytesAsync(ReplicatedPair.DataFile(lost)));

        var resolved = await kept.FerryJsonAsync("volume", "resolve", ReplicatedPair.Volume, "--discard", discarded);
        var report = resolved.GetProperty("message").GetString();
        var lostBlocks = kept == pair.A ? "2 block(s)" : "16 block(s)";
        Assert.Contains($"discarding {lostBlocks}", report, StringComparison.Ordinal);

        await ReplicatedPair.WaitInSyncAsync(kept);
        Assert.Contains("ManualDiscard", (await ReplicatedPair.PeerAsync(kept)).GetProperty("decision").GetString(), StringComparison.Ordinal);
        Assert.Equal(await File.ReadAllBytesAsync(ReplicatedPair.DataFile(kept)), await File.ReadAllBytesAsync(ReplicatedPair.DataFile(lost)));
        var (keptPattern, keptAt) = kept == pair.A ? ("0xaa", "0") : ("0xbb", "1M");
        var read = await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(kept), $"read -P {keptPattern} {keptAt} 8k");
        Assert.DoesNotContain("fail", read, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Resolving_copies_that_are_not_split_is_refused()
    {
        await using var pair = await ReplicatedPair.StartAsync("16M");
        var refused = await pair.A.FerryAsync("volume", "resolve", ReplicatedPair.Volume, "--discard", "host-b");
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("not split", refused.StandardError, StringComparison.Ordinal);
    }
}
