using System.CommandLine;
using System.Globalization;
using Ferry.Agent.Api;
using Ferry.Storage.Replication;
using Ferry.Storage.Replication.Wire;
using Ferry.Storage.Volumes;
using Spectre.Console;

namespace Ferry.Cli.Commands;

/// <summary>`ferry volume ...`: the block volumes VM disks live on.</summary>
internal static class VolumeCommands
{
    public static Command Build()
    {
        var volume = new Command("volume", "Create and manage volumes (thin-provisioned block devices served over NBD)");
        volume.Subcommands.Add(Create());
        volume.Subcommands.Add(List());
        volume.Subcommands.Add(Show());
        volume.Subcommands.Add(Resize());
        volume.Subcommands.Add(Delete());
        volume.Subcommands.Add(Replicate());
        volume.Subcommands.Add(Promote());
        volume.Subcommands.Add(Demote());
        volume.Subcommands.Add(Resolve());
        volume.Subcommands.Add(Connection("connect", "Let the primary connect to its peers again (after disconnect)"));
        volume.Subcommands.Add(Connection("disconnect", "Stop replicating to the peers; they are marked Outdated"));
        volume.Subcommands.Add(WaitSync());
        volume.Subcommands.Add(Verify());
        return volume;
    }

    private static Argument<string> NameArgument() => new("name") { Description = "The volume's name" };

    private static Option<string> SizeOption() => new("--size") { Description = "Size, e.g. 10G or 512M (a plain number is bytes)", Required = true };

    private static Command Create()
    {
        var name = NameArgument();
        var size = SizeOption();
        var copyOf = new Option<Guid?>("--copy-of") { Description = "Create an empty copy of an existing volume (its id, from `volume show` on its primary); a resync fills it (hosts in no cluster)" };
        var hosts = new Option<string[]>("--host") { Description = "In a cluster: a host to hold a copy (repeatable or comma-separated, 1 to 3; default: the host asked)" };
        var protocol = new Option<ReplicationProtocol>("--protocol") { Description = "In a cluster: C (a write completes when every copy has it), B (when they received it) or A (after the local write)", DefaultValueFactory = _ => ReplicationProtocol.C };
        var command = new Command("create", "Create a volume (allocates nothing until written); in a cluster, with a copy on each host given") { name, size, copyOf, hosts, protocol };
        command.SetAction(CliContext.Action(async (context, parse, ct) =>
        {
            if (!SizeParser.ParseBytes(parse.GetValue(size)!).TryGetValue(out var bytes, out var error))
            {
                return CliContext.Fail(error);
            }

            if (!await context.Client.IsClusteredAsync(ct).ConfigureAwait(false))
            {
                return context.Print(await context.Client.CreateVolumeAsync(new CreateVolumeRequest(parse.GetValue(name)!, bytes, parse.GetValue(copyOf)), ct).ConfigureAwait(false), Render);
            }

            if (parse.GetValue(copyOf) is not null)
            {
                return CliContext.Fail(FerryError.InvalidArgument("in a cluster, give the hosts of every copy with --host instead of --copy-of"));
            }

            var named = (parse.GetValue(hosts) ?? []).SelectMany(h => h.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToList();
            var request = new ClusterVolumeRequest(parse.GetValue(name)!, bytes, named, parse.GetValue(protocol));
            return context.Print(await context.Client.CreateClusterVolumeAsync(request, ct).ConfigureAwait(false), RenderCluster);
        }));
        return command;
    }

    private static Command List()
    {
        var command = new Command("list", "List the volumes (in a cluster: the cluster's, with each copy)");
        command.SetAction(CliContext.Action(async (context, _, ct) => await context.Client.IsClusteredAsync(ct).ConfigureAwait(false)
            ? context.Print(await context.Client.ListClusterVolumesAsync(ct).ConfigureAwait(false), RenderClusterTable)
            : context.Print(await context.Client.ListVolumesAsync(ct).ConfigureAwait(false), RenderTable)));
        return command;
    }

    private static Command Show()
    {
        var name = NameArgument();
        var local = new Option<bool>("--local") { Description = "In a cluster: this host's copy in detail (links, resync, generations) instead of the cluster's view" };
        var command = new Command("show", "Show one volume in detail") { name, local };
        command.SetAction(CliContext.Action(async (context, parse, ct) =>
            !parse.GetValue(local) && await context.Client.IsClusteredAsync(ct).ConfigureAwait(false)
                ? context.Print(await context.Client.GetClusterVolumeAsync(parse.GetValue(name)!, ct).ConfigureAwait(false), RenderCluster)
                : context.Print(await context.Client.GetVolumeAsync(parse.GetValue(name)!, ct).ConfigureAwait(false), Render)));
        return command;
    }

    private static Command Resize()
    {
        var name = NameArgument();
        var size = SizeOption();
        var shrink = new Option<bool>("--shrink") { Description = "Allow making it smaller (the data past the new end is lost)" };
        var command = new Command("resize", "Change a volume's size") { name, size, shrink };
        command.SetAction(CliContext.Action(async (context, parse, ct) =>
        {
            if (!SizeParser.ParseBytes(parse.GetValue(size)!).TryGetValue(out var bytes, out var error))
            {
                return CliContext.Fail(error);
            }

            var request = new ResizeVolumeRequest(bytes, parse.GetValue(shrink));
            return context.Print(await context.Client.ResizeVolumeAsync(parse.GetValue(name)!, request, ct).ConfigureAwait(false), Render);
        }));
        return command;
    }

    private static Command Delete()
    {
        var name = NameArgument();
        var command = new Command("delete", "Delete a volume and its data (refused while a VM uses it)") { name };
        command.SetAction(CliContext.Action(async (context, parse, ct) =>
        {
            var volume = parse.GetValue(name)!;
            var deleted = await context.Client.IsClusteredAsync(ct).ConfigureAwait(false)
                ? await context.Client.DeleteClusterVolumeAsync(volume, ct).ConfigureAwait(false)
                : await context.Client.DeleteVolumeAsync(volume, ct).ConfigureAwait(false);
            if (deleted is { } error)
            {
                return CliContext.Fail(error);
            }

            Console.Out.WriteLine(context.Output == OutputFormat.Json ? $$"""{"deleted":"{{volume}}"}""" : $"deleted volume '{volume}'");
            return ExitCodes.Ok;
        }));
        return command;
    }

    private static Command Replicate()
    {
        var name = NameArgument();
        var peers = new Option<string[]>("--peer") { Description = "Another host's copy: HOST=ADDRESS:PORT (its agent's --replication-listen); once per peer, at most 2", AllowMultipleArgumentsPerToken = false };
        var protocol = new Option<ReplicationProtocol>("--protocol") { Description = "C: a write completes when every copy has it; B: when they received it; A: after the local write", DefaultValueFactory = _ => ReplicationProtocol.C };
        var checksum = new Option<bool>("--checksum-resync") { Description = "Compare checksums during a resync and skip identical blocks" };
        var rate = new Option<string?>("--resync-rate") { Description = "Most a resync sends per second, e.g. 200M (default: no limit)" };
        var twoPrimaries = new Option<bool>("--allow-two-primaries") { Description = "Allow a second primary beside this one for a live migration's handoff (protocol C, one peer; set on both copies)" };
        var command = new Command("replicate", "Set the other copies of a volume and the replication protocol") { name, peers, protocol, checksum, rate, twoPrimaries };
        command.SetAction(CliContext.Action(async (context, parse, ct) =>
        {
            var list = new List<PeerAddress>();
            foreach (var peer in parse.GetValue(peers) ?? [])
            {
                var at = peer.IndexOf('=', StringComparison.Ordinal);
                if (at <= 0 || at == peer.Length - 1)
                {
                    return CliContext.Fail(FerryError.InvalidArgument($"invalid --peer '{peer}': expected HOST=ADDRESS:PORT"));
                }

                list.Add(new PeerAddress(peer[..at], peer[(at + 1)..]));
            }

            long limit = 0;
            if (parse.GetValue(rate) is { } text && !SizeParser.ParseBytes(text).TryGetValue(out limit, out var error))
            {
                return CliContext.Fail(error);
            }

            var request = new ReplicationRequest(list, parse.GetValue(protocol), parse.GetValue(checksum), limit, parse.GetValue(twoPrimaries));
            return context.Print(await context.Client.ReplicateVolumeAsync(parse.GetValue(name)!, request, ct).ConfigureAwait(false), Render);
        }));
        return command;
    }

    private static Command Promote()
    {
        var name = NameArgument();
        var host = new Option<string?>("--host") { Description = "In a cluster: the host whose copy becomes primary (the cluster grants the next epoch)" };
        var epoch = new Option<ulong>("--epoch") { Description = "Hosts in no cluster: the new epoch, above every epoch any copy has seen" };
        var force = new Option<bool>("--force") { Description = "Promote an Outdated copy; the writes it lacks are lost (the answer says which)" };
        var dual = new Option<bool>("--dual") { Description = "Become a second primary beside the current one, at its epoch, for a live migration's handoff" };
        var command = new Command("promote", "Make a copy the primary: in a cluster --host H, else this host's with --epoch N, or a second primary (--dual)") { name, host, epoch, force, dual };
        command.SetAction(CliContext.Action(async (context, parse, ct) =>
        {
            if (await context.Client.IsClusteredAsync(ct).ConfigureAwait(false))
            {
                if (parse.GetValue(host) is not { } target || parse.GetValue(epoch) != 0 || parse.GetValue(dual))
                {
                    return CliContext.Fail(FerryError.InvalidArgument("in a cluster, give --host HOST (the cluster grants the epoch)"));
                }

                return context.Print(
                    await context.Client.PromoteClusterVolumeAsync(parse.GetValue(name)!, new ClusterPromoteRequest(target, parse.GetValue(force)), ct).ConfigureAwait(false),
                    RenderCluster);
            }

            if (parse.GetValue(dual) == (parse.GetValue(epoch) != 0))
            {
                return CliContext.Fail(FerryError.InvalidArgument("give either --epoch N (a new primary) or --dual (a second primary at the current primary's epoch)"));
            }

            var request = new PromoteRequest(parse.GetValue(epoch), parse.GetValue(force), parse.GetValue(dual));
            return context.Print(await context.Client.VolumeActionAsync<VolumeActionResult>(parse.GetValue(name)!, "promote", request, ct).ConfigureAwait(false), RenderAction);
        }));
        return command;
    }

    private static Command Demote()
    {
        var name = NameArgument();
        var command = new Command("demote", "Make this host's copy secondary (no VM may be running on it)") { name };
        command.SetAction(CliContext.Action(async (context, parse, ct) =>
            context.Print(await context.Client.VolumeActionAsync<VolumeInfo>(parse.GetValue(name)!, "demote", null, ct).ConfigureAwait(false), Render)));
        return command;
    }

    private static Command Resolve()
    {
        var name = NameArgument();
        var discard = new Option<string>("--discard") { Description = "The host whose copy's writes are discarded (a peer of this primary)", Required = true };
        var command = new Command("resolve", "Resolve a split brain: overwrite a peer's copy from this primary's") { name, discard };
        command.SetAction(CliContext.Action(async (context, parse, ct) =>
            context.Print(
                await context.Client.VolumeActionAsync<VolumeActionResult>(parse.GetValue(name)!, "resolve", new ResolveRequest(parse.GetValue(discard)!), ct).ConfigureAwait(false),
                RenderAction)));
        return command;
    }

    private static Command Connection(string action, string description)
    {
        var name = NameArgument();
        var command = new Command(action, description) { name };
        command.SetAction(CliContext.Action(async (context, parse, ct) =>
            context.Print(await context.Client.VolumeActionAsync<VolumeInfo>(parse.GetValue(name)!, action, null, ct).ConfigureAwait(false), Render)));
        return command;
    }

    /// <summary>A progress bar until every peer is connected and in sync.</summary>
    private static Command WaitSync()
    {
        var name = NameArgument();
        var timeout = TimeoutOption();
        var command = new Command("wait-sync", "Show resync progress until every peer copy is connected and in sync") { name, timeout };
        command.SetAction(CliContext.Action(async (context, parse, ct) =>
        {
            var volume = parse.GetValue(name)!;
            var followed = await FollowPeersAsync(
                context,
                volume,
                parse.GetValue(timeout),
                peer => peer.Resync is { } r ? (r.TotalBytes, r.DoneBytes) : null,
                v => v.Copy.Peers.Count > 0 && v.Copy.Peers.All(p => p.Connection == ConnectionState.Connected),
                ct).ConfigureAwait(false);
            return followed.TryGetValue(out _, out var error) ? ExitCodes.Ok : CliContext.Fail(error);
        }));
        return command;
    }

    private static Command Verify()
    {
        var name = NameArgument();
        var peer = new Option<string?>("--peer") { Description = "Verify only this host's copy (default: every peer)" };
        var timeout = TimeoutOption();
        var command = new Command("verify", "Compare every block's checksum with the peer copies; blocks that differ are resynced from this primary") { name, peer, timeout };
        command.SetAction(CliContext.Action(async (context, parse, ct) =>
        {
            var volume = parse.GetValue(name)!;
            if (!(await context.Client.VolumeActionAsync<VolumeActionResult>(volume, "verify", new VerifyRequest(parse.GetValue(peer)), ct).ConfigureAwait(false)).TryGetValue(out _, out var refused))
            {
                return CliContext.Fail(refused);
            }

            bool Verified(PeerStatus p) => p.Verify is { FinishedAt: not null };
            var followed = await FollowPeersAsync(
                context,
                volume,
                parse.GetValue(timeout),
                p => p.Verify is { FinishedAt: null } v
                    ? (p.Connection == ConnectionState.SyncSource && p.Resync is { } r ? (r.TotalBytes, r.DoneBytes) : (v.TotalBytes, v.DoneBytes))
                    : null,
                v => v.Copy.Peers.Where(p => parse.GetValue(peer) is not { } only || p.Host == only).All(Verified),
                ct).ConfigureAwait(false);
            if (!followed.TryGetValue(out var last, out var error))
            {
                return CliContext.Fail(error);
            }

            var reports = last.Copy.Peers.Where(p => p.Verify is not null).Select(p => new VerifyReport(p.Host, p.Verify!)).ToArray();
            context.Print<VerifyReport[]>(reports, RenderVerify);
            return reports.Any(r => r.Verify.Error is not null) ? CliContext.Fail(FerryError.Unavailable(string.Join("; ", reports.Select(r => $"{r.Host}: {r.Verify.Error}")))) : ExitCodes.Ok;
        }));
        return command;
    }

    private static Option<int> TimeoutOption() => new("--timeout") { Description = "Seconds to wait (0: no limit)", DefaultValueFactory = _ => 0 };

    /// <summary>
    /// Polls the volume with one progress bar per peer (what <paramref name="measure"/> reports, total and
    /// done bytes) until <paramref name="done"/> holds; returns the last state seen.
    /// </summary>
    private static async Task<Result<VolumeInfo>> FollowPeersAsync(
        CliContext context, string name, int timeoutSeconds, Func<PeerStatus, (long Total, long Done)?> measure, Func<VolumeInfo, bool> done, CancellationToken ct)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        if (timeoutSeconds > 0)
        {
            limit.CancelAfter(TimeSpan.FromSeconds(timeoutSeconds));
        }

        VolumeInfo? last = null;
        try
        {
            await AnsiConsole.Progress().AutoClear(false).Columns(
                new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new TransferSpeedColumn(), new RemainingTimeColumn())
                .StartAsync(async progress =>
                {
                    var bars = new Dictionary<string, ProgressTask>(StringComparer.Ordinal);
                    while (true)
                    {
                        if (!(await context.Client.GetVolumeAsync(name, limit.Token).ConfigureAwait(false)).TryGetValue(out last, out var error))
                        {
                            throw new FerryErrorException(error);
                        }

                        foreach (var peer in last.Copy.Peers)
                        {
                            var bar = bars.TryGetValue(peer.Host, out var b) ? b : bars[peer.Host] = progress.AddTask(Markup.Escape(peer.Host), maxValue: 1);
                            if (measure(peer) is { } m)
                            {
                                bar.MaxValue = Math.Max(1, m.Total);
                                bar.Value = m.Done;
                            }

                            bar.Description = Markup.Escape($"{peer.Host} {Display.Name(peer.Connection)}");
                        }

                        if (done(last))
                        {
                            foreach (var bar in bars.Values)
                            {
                                bar.Value = bar.MaxValue;
                            }

                            return;
                        }

                        await Task.Delay(TimeSpan.FromMilliseconds(250), limit.Token).ConfigureAwait(false);
                    }
                }).ConfigureAwait(false);
        }
        catch (FerryErrorException e)
        {
            return e.Error;
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return FerryError.Unavailable($"the peers of '{name}' did not get there within {timeoutSeconds} s");
        }

        return last!;
    }

    private static void RenderVerify(VerifyReport[] reports)
    {
        foreach (var (host, v) in reports)
        {
            var outcome = v.Error is { } error ? $"stopped: {error}"
                : v.DifferentBlocks == 0 ? "every block is identical"
                : $"{v.DifferentBlocks} block(s) of 4 KiB differed (first at {string.Join(", ", v.FirstDifferences.Select(o => o.ToString(CultureInfo.InvariantCulture)))}) and were resynced";
            CliContext.Write(new Markup(Markup.Escape($"{host}: compared {Bytes(v.DoneBytes)}: {outcome}")));
        }
    }

    /// <summary>What `volume verify` reports per peer.</summary>
    internal sealed record VerifyReport(string Host, VerifyProgress Verify);

    private static void RenderAction(VolumeActionResult result) => CliContext.Write(new Markup(Markup.Escape($"{result.Volume}: {result.Message}")));

    private sealed class FerryErrorException(FerryError error) : Exception(error.Message)
    {
        public FerryError Error { get; } = error;
    }

    private static void RenderTable(VolumeInfo[] volumes)
    {
        var table = new Table().Border(TableBorder.Simple).AddColumns("NAME", "SIZE", "ALLOCATED", "DISK", "ROLE", "CONNECTION", "EPOCH");
        foreach (var v in volumes)
        {
            table.AddRow(
                Markup.Escape(v.Name), Bytes(v.Size), Bytes(v.Allocated), Display.Name(v.Copy.Disk), Display.Name(v.Copy.Role), Display.Name(v.Copy.Connection),
                v.HighestEpoch.ToString(CultureInfo.InvariantCulture));
        }

        CliContext.Write(table);
    }

    private static void RenderClusterTable(ClusterVolumeView[] volumes)
    {
        var table = new Table().Border(TableBorder.Simple).AddColumns("NAME", "SIZE", "PROTOCOL", "PRIMARY", "EPOCH", "COPIES");
        foreach (var v in volumes)
        {
            table.AddRow(
                Markup.Escape(v.Name), Bytes(v.Size), v.Protocol.ToString(), Markup.Escape(v.Primary ?? "-"), v.Epoch.ToString(CultureInfo.InvariantCulture),
                Markup.Escape(string.Join(", ", v.Copies.Select(c => $"{c.Host} {InOneWord(c)}"))));
        }

        CliContext.Write(table);
    }

    /// <summary>A copy in the volume list: what matters most first (a fenced host's report is stale; an Outdated mark overrides the disk state).</summary>
    private static string InOneWord(ClusterCopyView copy) =>
        copy.HostFenced is not null ? "host fenced"
        : copy.Outdated is not null ? "outdated"
        : copy.Disk is { } disk ? Display.Name(disk)
        : "?";

    private static void RenderCluster(ClusterVolumeView v)
    {
        var grid = new Grid().AddColumn().AddColumn();
        grid.AddRow("name", Markup.Escape(v.Name));
        grid.AddRow("id", v.Id.ToString());
        grid.AddRow("size", $"{Bytes(v.Size)} ({v.Size} bytes)");
        grid.AddRow("protocol", v.Protocol.ToString());
        grid.AddRow("primary", Markup.Escape(v.Primary ?? "none"));
        grid.AddRow("epoch", v.Epoch.ToString(CultureInfo.InvariantCulture));
        foreach (var copy in v.Copies)
        {
            var seen = copy.Disk is { } disk
                ? $"{Display.Name(disk)}, {Display.Name(copy.Role!.Value)}, {Display.Name(copy.Connection!.Value)}"
                : "not reported yet";
            grid.AddRow(Markup.Escape($"copy {copy.Host}"), Markup.Escape(seen));
            if (copy.HostFenced is { } fence)
            {
                grid.AddRow(string.Empty, Markup.Escape($"its host is fenced since {fence.At:u} ({fence.Reason}): the line above is its last report"));
            }

            if (copy.Outdated is { } mark)
            {
                grid.AddRow(string.Empty, Markup.Escape($"marked Outdated by {mark.ByHost} at epoch {mark.Epoch} ({mark.At:u})"));
            }

            if (copy.Problem is { } problem)
            {
                grid.AddRow(string.Empty, Markup.Escape(problem));
            }
        }

        CliContext.Write(grid);
    }

    private static void Render(VolumeInfo v)
    {
        var grid = new Grid().AddColumn().AddColumn();
        grid.AddRow("name", Markup.Escape(v.Name));
        grid.AddRow("id", v.Id.ToString());
        grid.AddRow("size", $"{Bytes(v.Size)} ({v.Size} bytes)");
        grid.AddRow("allocated", Bytes(v.Allocated));
        grid.AddRow("disk", Display.Name(v.Copy.Disk));
        grid.AddRow("role", Display.Name(v.Copy.Role));
        grid.AddRow("connection", Display.Name(v.Copy.Connection));
        grid.AddRow("epoch", v.HighestEpoch.ToString(CultureInfo.InvariantCulture));
        grid.AddRow("generation", v.Generations.Current.ToString("X16", CultureInfo.InvariantCulture));
        grid.AddRow("protocol", v.Copy.Protocol.ToString());
        grid.AddRow("out of sync", Bytes(v.Copy.DirtyBytes));
        if (v.Copy.FencedReason is { } fenced)
        {
            grid.AddRow("fenced", Markup.Escape(fenced));
        }

        foreach (var (label, incoming) in new[] { ("primary link", v.Copy.Incoming), ("second primary link", v.Copy.SecondIncoming) })
        {
            if (incoming is not null)
            {
                grid.AddRow(label, Markup.Escape($"from {incoming.From}, {Display.Name(incoming.Connection)}, epoch {incoming.PrimaryEpoch}, resync received {Bytes(incoming.ResyncBytesReceived)}"
                    + (incoming.LastError is { } e ? $" ({e})" : "")));
            }
        }

        foreach (var peer in v.Copy.Peers)
        {
            var line = $"{peer.Address}: {Display.Name(peer.Connection)}" + (peer.Disk is { } d ? $", disk {Display.Name(d)}" : "") + (peer.Outdated ? ", marked Outdated" : "");
            if (peer.Resync is { FinishedAt: null } r)
            {
                line += string.Create(CultureInfo.InvariantCulture, $", resync {r.Percent:0.0}% of {Bytes(r.TotalBytes)}, {Bytes((long)r.BytesPerSecond)}/s, {r.TimeLeft?.TotalSeconds ?? 0:0} s left");
            }

            grid.AddRow(Markup.Escape($"peer {peer.Host}"), Markup.Escape(line));
            if (peer.Reason is { } reason)
            {
                grid.AddRow(string.Empty, Markup.Escape(reason));
            }

            if (peer.Decision is { } decision)
            {
                grid.AddRow(string.Empty, Markup.Escape($"last handshake: {decision}"));
            }
        }

        grid.AddRow("nbd export", Markup.Escape(v.Name));
        grid.AddRow("data file", Markup.Escape(v.DataPath));
        CliContext.Write(grid);
    }

    private static string Bytes(long bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
        double value = bytes;
        var unit = 0;
        while (value >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }

        return unit == 0 ? $"{bytes} B" : string.Create(CultureInfo.InvariantCulture, $"{value:0.#} {units[unit]}");
    }
}
