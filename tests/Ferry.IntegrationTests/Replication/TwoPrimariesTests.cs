using Ferry.IntegrationTests.Nbd;

namespace Ferry.IntegrationTests.Replication;

/// <summary>
/// Two primaries for a live migration's handoff: writes on either copy reach both, the old primary steps
/// down and the new one carries on; after a cut between them only the first to outdate the other writes on.
/// </summary>
public sealed class TwoPrimariesTests
{
    private const string Volume = ReplicatedPair.Volume;

    [Fact]
    public async Task Writes_on_either_primary_reach_both_copies_and_the_handoff_ends_with_one_primary()
    {
        await using var pair = await ReplicatedPair.StartAsync("16M");
        await AllowTwoPrimariesAsync(pair);

        var joined = await pair.B.FerryJsonAsync("volume", "promote", Volume, "--dual");
        Assert.Contains("primary beside host-a", joined.GetProperty("message").GetString(), StringComparison.Ordinal);

        await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(pair.A), "write -P 0x11 0 1M");
        await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(pair.B), "write -P 0x22 1M 1M", "read -P 0x11 0 1M");
        await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(pair.A), "read -P 0x22 1M 1M");
        Assert.Equal(await File.ReadAllBytesAsync(ReplicatedPair.DataFile(pair.A)), await File.ReadAllBytesAsync(ReplicatedPair.DataFile(pair.B)));

        // The handoff ends: the old primary steps down, the new one replicates to it as a secondary.
        await pair.A.FerryJsonAsync("volume", "demote", Volume);
        await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(pair.B), "write -P 0x33 2M 1M");
        await ReplicatedPair.WaitInSyncAsync(pair.B);
        Assert.Equal("secondary", (await ReplicatedPair.ShowAsync(pair.A)).GetProperty("copy").GetProperty("role").GetString());
        Assert.Equal(await File.ReadAllBytesAsync(ReplicatedPair.DataFile(pair.A)), await File.ReadAllBytesAsync(ReplicatedPair.DataFile(pair.B)));
    }

    [Fact]
    public async Task After_a_cut_the_first_primary_to_outdate_the_other_goes_on_and_the_other_is_fenced()
    {
        await using var pair = await ReplicatedPair.StartAsync("16M");
        await AllowTwoPrimariesAsync(pair);
        await pair.B.FerryJsonAsync("volume", "promote", Volume, "--dual");

        await pair.A.FerryJsonAsync("volume", "disconnect", Volume);
        await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(pair.A), "write -P 0x44 0 64k");

        var lateWrite = await Processes.RunAsync("qemu-io", ["-f", "raw", "-c", "write -P 0x55 0 64k", ReplicatedPair.NbdUri(pair.B)], TimeSpan.FromSeconds(60));
        Assert.Contains("error", lateWrite.StandardOutput + lateWrite.StandardError, StringComparison.OrdinalIgnoreCase);
        var fenced = (await ReplicatedPair.ShowAsync(pair.B)).GetProperty("copy").GetProperty("fencedReason").GetString();
        Assert.Contains("marked Outdated by host-a", fenced, StringComparison.Ordinal);
        await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(pair.A), "read -P 0x44 0 64k");
    }

    [Fact]
    public async Task A_second_primary_needs_both_copies_to_allow_it_and_protocol_c()
    {
        await using var pair = await ReplicatedPair.StartAsync("16M");
        var notAllowed = await pair.B.FerryAsync("volume", "promote", Volume, "--dual");
        Assert.NotEqual(0, notAllowed.ExitCode);
        Assert.Contains("--allow-two-primaries", notAllowed.StandardError, StringComparison.Ordinal);

        var protocolA = await pair.A.FerryAsync("volume", "replicate", Volume, "--peer", $"host-b=127.0.0.1:{pair.PortB}", "--protocol", "A", "--allow-two-primaries");
        Assert.NotEqual(0, protocolA.ExitCode);
        Assert.Contains("protocol C", protocolA.StandardError, StringComparison.Ordinal);

        // Only B allows it: A, still a plain primary, refuses B's link back, so B stays secondary.
        await pair.B.FerryJsonAsync("volume", "replicate", Volume, "--peer", $"host-a=127.0.0.1:{pair.PortA}", "--allow-two-primaries");
        var oneSided = await pair.B.FerryAsync("volume", "promote", Volume, "--dual");
        Assert.NotEqual(0, oneSided.ExitCode);
        Assert.Contains("stays secondary", oneSided.StandardError, StringComparison.Ordinal);
        Assert.Equal("secondary", (await ReplicatedPair.ShowAsync(pair.B)).GetProperty("copy").GetProperty("role").GetString());
        await ReplicatedPair.WaitInSyncAsync(pair.A);
    }

    private static async Task AllowTwoPrimariesAsync(ReplicatedPair pair)
    {
        await pair.A.FerryJsonAsync("volume", "replicate", Volume, "--peer", $"host-b=127.0.0.1:{pair.PortB}", "--allow-two-primaries");
        await pair.B.FerryJsonAsync("volume", "replicate", Volume, "--peer", $"host-a=127.0.0.1:{pair.PortA}", "--allow-two-primaries");
        await ReplicatedPair.WaitInSyncAsync(pair.A);
    }
}
