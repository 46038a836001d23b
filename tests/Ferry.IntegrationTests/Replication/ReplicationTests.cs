using System.Globalization;
using System.Text.RegularExpressions;
using Ferry.IntegrationTests.Nbd;

namespace Ferry.IntegrationTests.Replication;

/// <summary>Replication between two real agents over real TCP, driven by real NBD clients, with real kills.</summary>
public sealed partial class ReplicationTests
{
    private const int Block = 4096;

    [Fact]
    public async Task A_copy_that_was_away_resyncs_only_the_blocks_written_meanwhile()
    {
        await using var pair = await ReplicatedPair.StartAsync();
        var full = await ReplicatedPair.PeerAsync(pair.A);
        Assert.Equal(64L << 20, full.GetProperty("resync").GetProperty("doneBytes").GetInt64()); // the new copy was filled by a full sync...
        var sentBefore = full.GetProperty("resyncBytesSent").GetInt64();
        Assert.Equal(0, sentBefore); // ...of holes only: no data crossed
        Assert.Equal(0, (await ReplicatedPair.ShowAsync(pair.B)).GetProperty("allocated").GetInt64());

        await pair.B.KillAsync();
        await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(pair.A), "write -P 0x11 0 1M", "write -P 0x22 10M 4k", "write -P 0x33 20M 12k");
        var away = await ReplicatedPair.PeerAsync(pair.A);
        Assert.True(away.GetProperty("outdated").GetBoolean(), "the primary went on only after outdating the lost copy");

        await pair.B.LaunchAsync();
        await ReplicatedPair.WaitInSyncAsync(pair.A);
        var peer = await ReplicatedPair.PeerAsync(pair.A);
        Assert.Equal((1L << 20) + (4 * Block), peer.GetProperty("resyncBytesSent").GetInt64() - sentBefore);
        Assert.Contains("MissedWrites", peer.GetProperty("decision").GetString(), StringComparison.Ordinal);
        Assert.False(peer.GetProperty("outdated").GetBoolean());
        Assert.Equal(await File.ReadAllBytesAsync(ReplicatedPair.DataFile(pair.A)), await File.ReadAllBytesAsync(ReplicatedPair.DataFile(pair.B)));
    }

    [Fact]
    public async Task After_kill_9_of_the_primary_under_load_the_promoted_copy_has_every_acknowledged_write_and_the_old_primary_is_refused()
    {
        await using var pair = await ReplicatedPair.StartAsync();
        const int Writes = 3000;
        var commands = Enumerable.Range(0, Writes).Select(i => $"write -P {Pattern(i)} {i * Block} {Block}").ToArray();
        var load = NbdTools.RunAsync("qemu-io", ["-f", "raw", .. commands.SelectMany(c => new[] { "-c", c }), ReplicatedPair.NbdUri(pair.A)]);

        // Kill the primary's agent once writes are reaching the secondary: in the middle of the load.
        await Wait.UntilAsync(
            async () => (await ReadAsync(ReplicatedPair.DataFile(pair.B), 200 * Block, 1))[0] != 0,
            TimeSpan.FromSeconds(60),
            "writes to reach the secondary");
        await pair.A.KillAsync();
        var output = await load.ContinueWith(t => t.IsFaulted ? t.Exception!.InnerException!.Message : t.Result, TaskScheduler.Default);

        var acknowledged = AckedOffsets().Matches(output).Select(m => long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).ToList();
        Assert.True(acknowledged.Count is > 200 and < Writes, $"the kill should land mid-load; {acknowledged.Count} of {Writes} writes were acknowledged");

        var promoted = await pair.B.FerryJsonAsync("volume", "promote", ReplicatedPair.Volume, "--epoch", "2");
        Assert.Contains("epoch 2", promoted.GetProperty("message").GetString(), StringComparison.Ordinal);
        var verify = acknowledged.Select(offset => $"read -P {Pattern((int)(offset / Block))} {offset} {Block}").ToArray();
        foreach (var batch in verify.Chunk(500))
        {
            var read = await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(pair.B), batch);
            Assert.DoesNotContain("fail", read, StringComparison.OrdinalIgnoreCase);
        }

        // The old primary comes back believing it is primary at its first epoch (0): the copy at epoch 2 refuses it,
        // and it refuses writes rather than diverge.
        var before = await ReadAsync(ReplicatedPair.DataFile(pair.B), 0, Block);
        await pair.A.LaunchAsync();
        await Wait.UntilAsync(
            async () => (await ReplicatedPair.ShowAsync(pair.A)).GetProperty("copy").TryGetProperty("fencedReason", out var reason) && reason.GetString() is { Length: > 0 },
            TimeSpan.FromSeconds(30),
            "the stale primary to be refused by epoch");
        var stale = await Processes.RunAsync("qemu-io", ["-f", "raw", "-c", $"write -P 0x99 0 {Block}", ReplicatedPair.NbdUri(pair.A)], TimeSpan.FromMinutes(1));
        Assert.Contains("failed", stale.StandardOutput + stale.StandardError, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(before, await ReadAsync(ReplicatedPair.DataFile(pair.B), 0, Block));
        Assert.Contains("StaleEpoch", pair.B.Log, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Large_writes_reach_the_connected_copy_whole_and_in_order()
    {
        await using var pair = await ReplicatedPair.StartAsync("32M");
        await ReplicatedPair.WaitInSyncAsync(pair.A);

        // Random data in requests of up to 32 MiB, several in flight (the copy takes large ones straight from the socket into its file)...
        var source = Path.Combine(pair.A.DataDirectory, "random.raw");
        var random = new byte[32 << 20];
        Random.Shared.NextBytes(random);
        await File.WriteAllBytesAsync(source, random);
        await NbdTools.RunAsync("nbdcopy", "--request-size=4194304", "--requests=4", source, ReplicatedPair.NbdUri(pair.A));
        // ...then overwrites across those requests' edges, with FUA, and one that ends just past a spliced size.
        await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(pair.A), "write -f -P 0x5a 4095k 3M", "write -P 0xa5 7M 68k", "write -P 0x3c 12345k 1028k");

        var onA = await File.ReadAllBytesAsync(ReplicatedPair.DataFile(pair.A));
        Assert.Equal(onA, await File.ReadAllBytesAsync(ReplicatedPair.DataFile(pair.B)));
        Assert.Equal(random.AsSpan(0, 4095 << 10).ToArray(), onA.AsSpan(0, 4095 << 10).ToArray());
        Assert.All(onA.AsSpan(7 << 20, 68 << 10).ToArray(), b => Assert.Equal(0xa5, b));
        Assert.Equal("connected", (await ReplicatedPair.PeerAsync(pair.A)).GetProperty("connection").GetString());
    }

    [Fact]
    public async Task A_write_in_flight_when_the_copy_died_reaches_it_when_it_comes_back_even_with_no_write_after_it()
    {
        await using var pair = await ReplicatedPair.StartAsync("16M");

        // Frozen, the copy receives nothing; the primary judges it gone, outdates it and completes the write.
        // One write only: a second would find the copy gone and move the generation on its own.
        await pair.B.PauseAsync();
        await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(pair.A), "write -P 0x44 2M 64k");
        await pair.B.KillAsync();
        Assert.True((await ReplicatedPair.PeerAsync(pair.A)).GetProperty("outdated").GetBoolean(), "the primary went on only after outdating the lost copy");

        await pair.B.LaunchAsync();
        await ReplicatedPair.WaitInSyncAsync(pair.A);
        Assert.Equal(await File.ReadAllBytesAsync(ReplicatedPair.DataFile(pair.A)), await File.ReadAllBytesAsync(ReplicatedPair.DataFile(pair.B)));
    }

    [Fact]
    public async Task A_copy_that_loses_its_unflushed_writes_in_a_power_cut_gets_them_back_by_resync()
    {
        await using var pair = await ReplicatedPair.StartAsync("16M");
        await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(pair.A), "write -P 0x11 0 16M"); // flushed when qemu-io closes

        // Acknowledged by the copy (in its page cache), never flushed.
        await WriteUnflushedAsync(pair.A, "write -P 0x22 4M 64k", "write -P 0x33 8M 4k");

        // The power cut, as the copy's disk sees it: the agent dies, and what was not flushed is as before.
        await pair.B.KillAsync();
        using (var handle = File.OpenHandle(ReplicatedPair.DataFile(pair.B), FileMode.Open, FileAccess.ReadWrite))
        {
            RandomAccess.Write(handle, Enumerable.Repeat((byte)0x11, 64 << 10).ToArray(), 4L << 20);
            RandomAccess.Write(handle, Enumerable.Repeat((byte)0x11, Block).ToArray(), 8L << 20);
        }

        // Until it is back in step, the copy counts as one that may lack writes: a flush on the primary
        // (the guest's promise that its writes are durable) has it outdated first.
        await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(pair.A), "flush");
        Assert.True((await ReplicatedPair.PeerAsync(pair.A)).GetProperty("outdated").GetBoolean(), "a copy that may lack unflushed writes is outdated before a flush completes without it");

        await pair.B.LaunchAsync();
        await ReplicatedPair.WaitInSyncAsync(pair.A);
        var peer = await ReplicatedPair.PeerAsync(pair.A);
        Assert.Equal(await File.ReadAllBytesAsync(ReplicatedPair.DataFile(pair.A)), await File.ReadAllBytesAsync(ReplicatedPair.DataFile(pair.B)));
        Assert.Contains("MissedWrites", peer.GetProperty("decision").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_demoted_primary_has_its_writes_on_disk_before_it_stops_counting_as_a_crashed_primary()
    {
        await using var pair = await ReplicatedPair.StartAsync("16M");
        await WriteUnflushedAsync(pair.A, "write -P 0x22 4M 1M");
        Assert.True(PageCache.NotOnDisk(ReplicatedPair.DataFile(pair.A)) > 0, "the write is only in the page cache before the demotion");

        // Demoted, the copy no longer marks its activity-log extents when it opens after a crash; a power cut
        // from here on must not take writes its peer has flushed.
        await pair.A.FerryJsonAsync("volume", "demote", ReplicatedPair.Volume);
        Assert.Equal(0, PageCache.NotOnDisk(ReplicatedPair.DataFile(pair.A)));
        Assert.Equal(0, PageCache.NotOnDisk(ReplicatedPair.DataFile(pair.B)));
    }

    [Fact]
    public async Task A_promoted_copy_has_what_it_received_on_disk_before_it_counts_only_its_own_writes_as_a_crashed_primary()
    {
        await using var pair = await ReplicatedPair.StartAsync("16M");
        await WriteUnflushedAsync(pair.A, "write -P 0x22 4M 1M");
        await pair.A.KillAsync();
        Assert.True(PageCache.NotOnDisk(ReplicatedPair.DataFile(pair.B)) > 0, "the copy holds the write in its page cache only");

        await pair.B.FerryJsonAsync("volume", "promote", ReplicatedPair.Volume, "--epoch", "2");
        Assert.Equal(0, PageCache.NotOnDisk(ReplicatedPair.DataFile(pair.B)));
    }

    [Fact]
    public async Task An_interrupted_resync_resumes_with_the_blocks_it_had_not_finished()
    {
        await using var pair = await ReplicatedPair.StartAsync();
        await pair.A.FerryJsonAsync("volume", "replicate", ReplicatedPair.Volume, "--peer", $"host-b=127.0.0.1:{pair.PortB}", "--resync-rate", "8M");
        await ReplicatedPair.WaitInSyncAsync(pair.A);
        var sentBefore = (await ReplicatedPair.PeerAsync(pair.A)).GetProperty("resyncBytesSent").GetInt64();
        await pair.B.KillAsync();
        const long Written = 32L << 20;
        await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(pair.A), $"write -P 0x5a 0 {Written}");

        await pair.B.LaunchAsync();
        await Wait.UntilAsync(
            async () => (await ReplicatedPair.PeerAsync(pair.A)).GetProperty("resyncBytesSent").GetInt64() - sentBefore >= 16L << 20,
            TimeSpan.FromSeconds(60),
            "half of the resync to be sent");
        await pair.B.KillAsync();
        var firstRun = (await ReplicatedPair.PeerAsync(pair.A)).GetProperty("resyncBytesSent").GetInt64() - sentBefore;
        Assert.True(firstRun < Written, $"the resync should be cut mid-way, but {firstRun} bytes were sent");

        await pair.B.LaunchAsync();
        await ReplicatedPair.WaitInSyncAsync(pair.A);
        var total = (await ReplicatedPair.PeerAsync(pair.A)).GetProperty("resyncBytesSent").GetInt64() - sentBefore;

        // The second run sends what was left, the few blocks in flight when the copy died and those it had
        // not flushed yet (half a second's worth: it may have lost them); starting over would have sent all
        // of the first run's bytes again.
        Assert.InRange(total, Written, Written + (firstRun / 2));
        Assert.Equal(await File.ReadAllBytesAsync(ReplicatedPair.DataFile(pair.A)), await File.ReadAllBytesAsync(ReplicatedPair.DataFile(pair.B)));
    }

    [Fact]
    public async Task A_checksum_resync_sends_only_the_blocks_whose_data_differs()
    {
        await using var pair = await ReplicatedPair.StartAsync("16M");
        await pair.A.FerryJsonAsync("volume", "replicate", ReplicatedPair.Volume, "--peer", $"host-b=127.0.0.1:{pair.PortB}", "--checksum-resync");
        await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(pair.A), "write -P 0x11 0 1M");
        await ReplicatedPair.WaitInSyncAsync(pair.A);

        // While apart, the same data is written again over 1 MiB (marked, but alike) and one block changes.
        await pair.A.FerryJsonAsync("volume", "disconnect", ReplicatedPair.Volume);
        await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(pair.A), "write -P 0x11 0 1M", "write -P 0x22 8M 4k");
        await pair.A.FerryJsonAsync("volume", "connect", ReplicatedPair.Volume);
        await ReplicatedPair.WaitInSyncAsync(pair.A);

        var peer = await ReplicatedPair.PeerAsync(pair.A);
        Assert.Equal(Block, peer.GetProperty("resyncBytesSent").GetInt64());
        Assert.Equal((1L << 20) + Block, peer.GetProperty("resync").GetProperty("doneBytes").GetInt64());
        Assert.Equal(await File.ReadAllBytesAsync(ReplicatedPair.DataFile(pair.A)), await File.ReadAllBytesAsync(ReplicatedPair.DataFile(pair.B)));
    }

    [Fact]
    public async Task Verify_finds_blocks_corrupted_on_a_copy_and_the_resync_after_it_repairs_them()
    {
        await using var pair = await ReplicatedPair.StartAsync("16M");
        await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(pair.A), "write -P 0x31 0 4M");
        var clean = await pair.A.FerryJsonAsync("volume", "verify", ReplicatedPair.Volume);
        Assert.Equal(0, clean[0].GetProperty("verify").GetProperty("differentBlocks").GetInt64());

        // Bit rot under the secondary's feet: three blocks in two places, behind the agent's back.
        long[] corrupted = [8 * Block, 9 * Block, 3000 * Block];
        using (var handle = File.OpenHandle(ReplicatedPair.DataFile(pair.B), FileMode.Open, FileAccess.ReadWrite))
        {
            foreach (var offset in corrupted)
            {
                RandomAccess.Write(handle, new byte[] { 0xEE, 0xEE }, offset + 100);
            }
        }

        var report = await pair.A.FerryJsonAsync("volume", "verify", ReplicatedPair.Volume);
        var verify = report[0].GetProperty("verify");
        Assert.Equal(3, verify.GetProperty("differentBlocks").GetInt64());
        Assert.Equal([8 * Block, 3000 * Block], verify.GetProperty("firstDifferences").EnumerateArray().Select(e => e.GetInt64()));
        Assert.Equal(await File.ReadAllBytesAsync(ReplicatedPair.DataFile(pair.A)), await File.ReadAllBytesAsync(ReplicatedPair.DataFile(pair.B)));
        var peer = await ReplicatedPair.PeerAsync(pair.A);
        Assert.Equal("connected", peer.GetProperty("connection").GetString());
        Assert.Equal(0, (await ReplicatedPair.ShowAsync(pair.A)).GetProperty("copy").GetProperty("dirtyBytes").GetInt64());
    }

    [Fact]
    public async Task An_outdated_copy_is_not_promoted_unless_forced_and_forcing_reports_the_risk()
    {
        await using var pair = await ReplicatedPair.StartAsync("16M");
        await pair.A.FerryJsonAsync("volume", "disconnect", ReplicatedPair.Volume);
        await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(pair.A), "write -P 0x44 0 64k");

        var refused = await pair.B.FerryAsync("volume", "promote", ReplicatedPair.Volume, "--epoch", "5");
        Assert.Equal(5, refused.ExitCode);
        Assert.Contains("Outdated", refused.StandardError, StringComparison.Ordinal);

        var forced = await pair.B.FerryJsonAsync("volume", "promote", ReplicatedPair.Volume, "--epoch", "5", "--force");
        Assert.Contains("at risk", forced.GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_copy_whose_disk_fills_up_is_outdated_the_primary_loses_nothing_and_it_resyncs_once_there_is_room()
    {
        await using var pair = await ReplicatedPair.StartAsync("64M");

        // The copy's volume moves onto a file system of 16 MiB (its data file is thin: nothing allocated yet).
        await OnSmallFileSystemAsync(pair, pair.B, async directory =>
        {

            // 32 MiB of writes: the copy runs out of room halfway, and every one of them still succeeds on the primary.
            var writes = Enumerable.Range(0, 32).Select(i => $"write -P 0x5a {i}M 1M").ToArray();
            var wrote = await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(pair.A), writes);
            Assert.Equal(32, wrote.Split("wrote ").Length - 1);
            await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(pair.A), "read -P 0x5a 0 32M"); // fails on any error
            var full = await ReplicatedPair.PeerAsync(pair.A);
            Assert.True(full.GetProperty("outdated").GetBoolean(), $"the primary went on only after outdating the full copy: {full}");
            Assert.Contains("no space left", full.GetProperty("reason").GetString(), StringComparison.Ordinal); // the primary says why
            Assert.Contains("this copy failed a write", pair.B.Log, StringComparison.Ordinal); // and so does the host that must act
            Assert.NotEqual("connected", full.GetProperty("connection").GetString());

            // The link retries every second and fails alike each time: both logs say so once, not every time.
            await Task.Delay(TimeSpan.FromSeconds(4));
            static int Count(string log, string line) => log.Split(line).Length - 1;
            Assert.Equal(1, Count(pair.A.Log, "could not apply a change: no space left"));
            Assert.InRange(Count(pair.A.Log, "could not apply a resync block: no space left"), 0, 1);
            Assert.Equal(1, Count(pair.B.Log, "this copy failed a write"));
            Assert.InRange(Count(pair.B.Log, "this copy failed a resync write"), 0, 1);

            // With room again, the link's next try resyncs what the copy lacks.
            await Processes.RunOkAsync("mount", "-o", "remount,size=128M", directory);
            await ReplicatedPair.WaitInSyncAsync(pair.A);
            Assert.False((await ReplicatedPair.PeerAsync(pair.A)).GetProperty("outdated").GetBoolean());
            Assert.Equal(await File.ReadAllBytesAsync(ReplicatedPair.DataFile(pair.A)), await File.ReadAllBytesAsync(ReplicatedPair.DataFile(pair.B)));
        });
    }

    [Fact]
    public async Task When_the_primarys_disk_fills_up_its_failed_writes_leave_the_copies_alike_and_succeed_once_there_is_room()
    {
        await using var pair = await ReplicatedPair.StartAsync("64M");
        await OnSmallFileSystemAsync(pair, pair.A, async directory =>
        {

            // Writes of 32 KiB are sent to the copy before the primary writes them itself: the copy has room for all,
            // the primary for about half. Those that fail on the primary fail for the client.
            var writes = Enumerable.Range(0, 1024).SelectMany(i => new[] { "-c", $"write -P 0x5a {i * 32}k 32k" });
            var run = await Processes.RunAsync("qemu-io", ["-f", "raw", .. writes, ReplicatedPair.NbdUri(pair.A)], TimeSpan.FromMinutes(2));
            var output = run.StandardOutput + run.StandardError;
            var wrote = output.Split("wrote ").Length - 1;
            Assert.True(wrote is > 0 and < 1024, $"the primary's disk should fill up halfway; {wrote} of 1024 writes succeeded");
            Assert.Contains("No space left on device", output, StringComparison.Ordinal);
            await Processes.RunAsync("dd", ["if=/dev/zero", $"of={Path.Combine(directory, "filler")}", "bs=4096"], TimeSpan.FromSeconds(30)); // not a page left

            // The copy may have written what the primary could not: the primary resyncs those blocks to it from its own.
            async Task<bool> AlikeAsync()
            {
                var onA = await File.ReadAllBytesAsync(ReplicatedPair.DataFile(pair.A));
                var onB = await File.ReadAllBytesAsync(ReplicatedPair.DataFile(pair.B));
                return onA.AsSpan().SequenceEqual(onB);
            }

            await Wait.UntilAsync(
                async () => (await ReplicatedPair.PeerAsync(pair.A)).GetProperty("connection").GetString() == "connected" && await AlikeAsync(),
                TimeSpan.FromSeconds(30),
                "the copies to hold the same data again");
            Assert.False((await ReplicatedPair.PeerAsync(pair.A)).GetProperty("outdated").GetBoolean());

            // Still full, the primary takes overwrites of blocks it holds, records that it lost its peer (a new
            // generation in its superblock) and, stopped cleanly, which blocks the peer lacks (its bitmap).
            await pair.B.KillAsync();
            await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(pair.A), "write -P 0x6b 0 64k", "write -P 0x6c 8M 4k");
            Assert.True((await ReplicatedPair.PeerAsync(pair.A)).GetProperty("outdated").GetBoolean());
            await pair.A.StopAsync();
            Assert.DoesNotContain("fail:", pair.A.Log, StringComparison.Ordinal);
            Assert.DoesNotContain("crit:", pair.A.Log, StringComparison.Ordinal);
            await pair.A.LaunchAsync();
            await pair.B.LaunchAsync();
            await ReplicatedPair.WaitInSyncAsync(pair.A);
            var back = await ReplicatedPair.PeerAsync(pair.A);
            Assert.Contains("MissedWrites", back.GetProperty("decision").GetString(), StringComparison.Ordinal);
            Assert.True(await AlikeAsync(), "the copy got the writes it missed");

            // With room again, the client's retries succeed on both.
            await Processes.RunOkAsync("mount", "-o", "remount,size=128M", directory);
            await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(pair.A), "write -P 0x5a 0 32M", "read -P 0x5a 0 32M"); // fails on any error
            Assert.Equal(await File.ReadAllBytesAsync(ReplicatedPair.DataFile(pair.A)), await File.ReadAllBytesAsync(ReplicatedPair.DataFile(pair.B)));
        });
    }

    /// <summary>
    /// Writes through the primary's export and never flushes: back-cached (qemu-io's default writes through,
    /// each write with FUA), and qemu-io kills itself rather than close (which flushes).
    /// </summary>
    private static async Task WriteUnflushedAsync(AgentProcess primary, params string[] writes)
    {
        var output = await Processes.RunAsync(
            "qemu-io", ["-f", "raw", "-t", "writeback", .. writes.SelectMany(w => new[] { "-c", w }), "-c", "sigraise 9", ReplicatedPair.NbdUri(primary)], TimeSpan.FromMinutes(1));
        Assert.Equal(writes.Length, output.StandardOutput.Split("wrote ").Length - 1);
    }

    private static int Pattern(int index) => (index % 250) + 1;

    /// <summary>
    /// Runs <paramref name="test"/> (given the mount point) with <paramref name="agent"/>'s copy of the volume on a
    /// tmpfs of 16 MiB mounted in its place (the agent restarted around the move) and the pair in sync again;
    /// the agent is killed and the file system unmounted after, whatever happened.
    /// </summary>
    private static async Task OnSmallFileSystemAsync(ReplicatedPair pair, AgentProcess agent, Func<string, Task> test)
    {
        await agent.KillAsync();
        var directory = Path.GetDirectoryName(ReplicatedPair.DataFile(agent))!;
        var away = directory + ".away";
        Directory.Move(directory, away);
        Directory.CreateDirectory(directory);
        await Processes.RunOkAsync("mount", "-t", "tmpfs", "-o", "size=16M", "tmpfs", directory);
        try
        {
            await Processes.RunOkAsync("cp", "-a", "--sparse=always", away + "/.", directory);
            Directory.Delete(away, recursive: true);
            await agent.LaunchAsync();
            await ReplicatedPair.WaitInSyncAsync(pair.A);
            await test(directory);
        }
        finally
        {
            await agent.KillAsync();
            await Processes.RunOkAsync("umount", "-l", directory);
        }
    }

    private static async Task<byte[]> ReadAsync(string path, long offset, int length)
    {
        var data = new byte[length];
        using var handle = File.OpenHandle(path);
        await RandomAccess.ReadAsync(handle, data, offset);
        return data;
    }

    [GeneratedRegex(@"wrote \d+/\d+ bytes at offset (\d+)")]
    private static partial Regex AckedOffsets();
}
