using System.CommandLine;
using Ferry.Agent.Api;
using Ferry.Cluster.Reconcile;
using Ferry.Cluster.State;
using Spectre.Console;
using Ferry.Cluster.Leases;

namespace Ferry.Cli.Commands;

/// <summary>`ferry cluster ...` and `ferry node ...`: forming the cluster and changing its hosts.</summary>
internal static class ClusterCommands
{
    public static Command BuildCluster()
    {
        var cluster = new Command("cluster", "Create the cluster and see its state");
        cluster.Subcommands.Add(Init());
        cluster.Subcommands.Add(JoinToken());
        cluster.Subcommands.Add(Status());
        cluster.Subcommands.Add(Events());
        cluster.Subcommands.Add(Verify());
        cluster.Subcommands.Add(Set());
        return cluster;
    }

    public static Command BuildNode()
    {
        var node = new Command("node", "Add hosts to the cluster and remove them");
        node.Subcommands.Add(Join());
        node.Subcommands.Add(Remove());
        node.Subcommands.Add(FenceAgent());
        node.Subcommands.Add(Maintenance("drain", "Put a host in maintenance: its VMs move away and no VM is placed on it", on: true));
        node.Subcommands.Add(Maintenance("undrain", "Take a host out of maintenance: it takes VMs again", on: false));
        return node;
    }

    private static Command Init()
    {
        var name = new Argument<string>("name") { Description = "The cluster's name" };
        var defaults = new LeaseTimings();
        var renewal = new Option<string>("--lease-renewal") { Description = "How often each host renews its lease", DefaultValueFactory = _ => $"{defaults.Renewal.TotalMilliseconds:0}ms" };
        var lease = new Option<string>("--lease") { Description = "How long after its last acknowledged renewal a host fences itself", DefaultValueFactory = _ => $"{defaults.Lease.TotalSeconds:0}s" };
        var margin = new Option<string>("--lease-margin") { Description = "How much longer than the lease a host must be silent to be judged failed", DefaultValueFactory = _ => $"{defaults.Margin.TotalSeconds:0}s" };
        var command = new Command("init", "Create a cluster with this host as its first member: its certificate authority, consensus log and lease timings") { name, renewal, lease, margin };
        command.SetAction(CliContext.Action(async (context, parse, ct) =>
        {
            if (!DurationParser.Parse(parse.GetValue(renewal)!).TryGetValue(out var every, out var error)
                || !DurationParser.Parse(parse.GetValue(lease)!).TryGetValue(out var holds, out error)
                || !DurationParser.Parse(parse.GetValue(margin)!).TryGetValue(out var more, out error))
            {
                return CliContext.Fail(error);
            }

            var timings = new LeaseTimings { Renewal = every, Lease = holds, Margin = more };
            return timings.Check() is { } broken
                ? CliContext.Fail(broken)
                : context.Print(await context.Client.InitClusterAsync(new InitClusterRequest(parse.GetValue(name)!, timings == defaults ? null : timings), ct).ConfigureAwait(false), RenderStatus);
        }));
        return command;
    }

    private static Command JoinToken()
    {
        var valid = new Option<string?>("--valid") { Description = "How long the token stays valid: 90s, 10m, 2h, up to 7d (default 60m)" };
        var command = new Command("join-token", "Issue a one-time token that lets one host join") { valid };
        command.SetAction(CliContext.Action(async (context, parse, ct) =>
        {
            int? seconds = null;
            if (parse.GetValue(valid) is { } text)
            {
                if (!DurationParser.Parse(text).TryGetValue(out var duration, out var error))
                {
                    return CliContext.Fail(error);
                }

                seconds = (int)Math.Min(duration.TotalSeconds, int.MaxValue);
            }

            return context.Print(await context.Client.JoinTokenAsync(new JoinTokenRequest(seconds), ct).ConfigureAwait(false), token =>
            {
                Console.Out.WriteLine(token.Token);
                Console.Error.WriteLine($"valid once, until {token.ExpiresAt:u}: on the new host run 'ferry node join ADDRESS --token TOKEN'");
            });
        }));
        return command;
    }

    private static Command Join()
    {
        var address = new Argument<string>("address") { Description = "HOST:PORT of a member's peer API (its --peer-listen)" };
        var token = new Option<string>("--token") { Description = "The token from 'ferry cluster join-token'", Required = true };
        var witness = new Option<bool>("--witness") { Description = "Join as a witness: votes, runs no VMs, holds no data" };
        var command = new Command("join", "Join this host to the cluster of the member at ADDRESS") { address, token, witness };
        command.SetAction(CliContext.Action(async (context, parse, ct) =>
            context.Print(await context.Client.JoinClusterAsync(new JoinClusterRequest(parse.GetValue(address)!, parse.GetValue(token)!, parse.GetValue(witness)), ct).ConfigureAwait(false), RenderStatus)));
        return command;
    }

    private static Command FenceAgent()
    {
        var name = new Argument<string>("host") { Description = "The host's name" };
        var program = new Option<string?>("--command") { Description = "The fence agent's program, by absolute path (e.g. /usr/sbin/fence_ipmilan)" };
        var args = new Option<string[]>("--arg") { Description = "An argument for the program (repeatable)" };
        var parameters = new Option<string[]>("--param") { Description = "KEY=VALUE for the agent's standard input, e.g. ip=10.0.0.5 (repeatable; action=off is Ferry's)" };
        var timeout = new Option<int?>("--timeout") { Description = $"Seconds one run may take (default {Ferry.Cluster.State.FenceAgent.DefaultTimeoutSeconds})" };
        var none = new Option<bool>("--none") { Description = "Remove the host's fence agent: its lease and self-fencing alone fence it" };
        var command = new Command("fence-agent", "Set the fence agent that switches a failed host off before its VMs run elsewhere") { name, program, args, parameters, timeout, none };
        command.SetAction(CliContext.Action(async (context, parse, ct) =>
        {
            FenceAgentRequest? request = null;
            if (!parse.GetValue(none))
            {
                if (parse.GetValue(program) is not { } path)
                {
                    return CliContext.Fail(FerryError.InvalidArgument("give the agent's program with --command PATH, or --none to remove it"));
                }

                var values = new Dictionary<string, string>(StringComparer.Ordinal);
                foreach (var pair in parse.GetValue(parameters) ?? [])
                {
                    var at = pair.IndexOf('=', StringComparison.Ordinal);
                    if (at <= 0)
                    {
                        return CliContext.Fail(FerryError.InvalidArgument($"invalid --param '{pair}': give KEY=VALUE"));
                    }

                    values[pair[..at]] = pair[(at + 1)..];
                }

                request = new FenceAgentRequest([path, .. parse.GetValue(args) ?? []], values, parse.GetValue(timeout));
            }

            return context.Print(await context.Client.SetFenceAgentAsync(parse.GetValue(name)!, request, ct).ConfigureAwait(false), RenderStatus);
        }));
        return command;
    }

    private static Command Maintenance(string verb, string description, bool on)
    {
        var name = new Argument<string>("host") { Description = "The host's name" };
        var noWait = new Option<bool>("--no-wait") { Description = "Return at once instead of following the VMs' moves" };
        var timeout = new Option<string>("--timeout") { Description = "Give up waiting after this long (the moves go on)", DefaultValueFactory = _ => "10m" };
        var command = new Command(verb, description) { name, noWait, timeout };
        command.SetAction(CliContext.Action(async (context, parse, ct) =>
        {
            if (!DurationParser.Parse(parse.GetValue(timeout)!).TryGetValue(out var limit, out var badTimeout))
            {
                return CliContext.Fail(badTimeout);
            }

            var host = parse.GetValue(name)!;
            var status = await context.Client.SetMaintenanceAsync(host, on, ct).ConfigureAwait(false);
            if (!status.IsOk || parse.GetValue(noWait))
            {
                return context.Print(status, RenderStatus);
            }

            return await FollowMovesAsync(context, host, on, limit, ct).ConfigureAwait(false) is { } stuck ? CliContext.Fail(stuck) : context.Print(status, RenderStatus);
        }));
        return command;
    }

    /// <summary>
    /// Follows a drain (every running VM off the host) or an undrain (every VM whose home it is back on
    /// it), saying on stderr what moves and what cannot; an error once the time is up.
    /// </summary>
    private static async Task<FerryError?> FollowMovesAsync(CliContext context, string host, bool drain, TimeSpan limit, CancellationToken ct)
    {
        var started = DateTimeOffset.UtcNow;
        var total = -1;
        string? said = null;
        while (true)
        {
            if (!(await context.Client.ListVmsAsync(ct).ConfigureAwait(false)).TryGetValue(out var vms, out var error))
            {
                return error;
            }

            var left = vms.Where(v => v.Desired == Hypervisor.DesiredState.Running && (drain ? v.Host == host : v.Home == host && v.Host != host)).ToList();
            total = Math.Max(total, left.Count);
            if (left.Count == 0)
            {
                var moved = total == 1 ? "1 VM" : $"{total} VMs";
                Console.Error.WriteLine(drain ? $"{host} is drained: {moved} moved away" : $"{host} takes VMs again: {moved} moved back");
                return null;
            }

            var moving = left.FirstOrDefault(v => v.Migration is not null);
            var line = $"{total - left.Count} of {total} moved" + (moving?.Migration is { } m ? $"; moving {moving.Name} from {m.Source} to {m.Target}" : "")
                + string.Concat(left.Where(v => v.Waiting is not null).Select(v => $"; {v.Name}: {v.Waiting}"));
            if (line != said)
            {
                Console.Error.WriteLine(line);
                said = line;
            }

            if (DateTimeOffset.UtcNow - started > limit)
            {
                return FerryError.Unavailable($"{host} still {(drain ? "runs" : "waits for")} [{string.Join(", ", left.Select(v => v.Name))}] after {limit.TotalSeconds:0} s; the cluster goes on trying");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(500), ct).ConfigureAwait(false);
        }
    }

    private static Command Set()
    {
        var nPlusOne = new Option<string?>("--n-plus-one") { Description = "on: a VM starts only if every VM could still restart after any one host's loss (default); off: capacity alone" };
        nPlusOne.AcceptOnlyFromAmong("on", "off");
        var command = new Command("set", "Change the cluster's settings") { nPlusOne };
        command.SetAction(CliContext.Action(async (context, parse, ct) =>
        {
            bool? admission = parse.GetValue(nPlusOne) is { } value ? value == "on" : null;
            if (admission is null)
            {
                return CliContext.Fail(FerryError.InvalidArgument("say what to set, e.g. --n-plus-one off"));
            }

            return context.Print(await context.Client.SetClusterSettingsAsync(new ClusterSettingsRequest(admission), ct).ConfigureAwait(false), RenderStatus);
        }));
        return command;
    }

    private static Command Verify()
    {
        var command = new Command("verify", "What puts the cluster at risk: N+1 (which host's loss strands which VMs), twins on one host, capacity, copies");
        command.SetAction(CliContext.Action(async (context, _, ct) =>
        {
            var risks = await context.Client.VerifyClusterAsync(ct).ConfigureAwait(false);
            var exit = context.Print(risks, found =>
            {
                if (found.Length == 0)
                {
                    Console.Out.WriteLine("no risks found: the cluster can absorb the loss of any one host");
                    return;
                }

                var table = new Table().AddColumns("severity", "kind", "hosts", "VMs", "what");
                foreach (var risk in found)
                {
                    table.AddRow(FerryJson.Name(risk.Severity), risk.Kind, Markup.Escape(string.Join(", ", risk.Hosts)), Markup.Escape(string.Join(", ", risk.Vms)), Markup.Escape(risk.Message));
                }

                CliContext.Write(table);
            });

            // Like a check: errors make the command fail, so scripts and monitoring can act on it.
            return exit == ExitCodes.Ok && risks.Value!.Any(r => r.Severity == RiskSeverity.Error) ? ExitCodes.Failure : exit;
        }));
        return command;
    }

    private static Command Remove()
    {
        var name = new Argument<string>("host") { Description = "The host's name" };
        var force = new Option<bool>("--force") { Description = "Remove even though VMs are placed on it or it holds volume copies (they are unplaced and dropped)" };
        var command = new Command("remove", "Remove a host from the cluster") { name, force };
        command.SetAction(CliContext.Action(async (context, parse, ct) =>
            context.Print(await context.Client.RemoveHostAsync(parse.GetValue(name)!, parse.GetValue(force), ct).ConfigureAwait(false), RenderStatus)));
        return command;
    }

    private static Command Status()
    {
        var local = new Option<bool>("--local") { Description = "This host's own view, without asking the leader" };
        var command = new Command("status", "Members, leader, term, commit index and the health of each host") { local };
        command.SetAction(CliContext.Action(async (context, parse, ct) =>
            context.Print(await context.Client.ClusterStatusAsync(parse.GetValue(local), ct).ConfigureAwait(false), RenderStatus)));
        return command;
    }

    private static Command Events()
    {
        var command = new Command("events", "What changed in the cluster, oldest first");
        command.SetAction(CliContext.Action(async (context, _, ct) =>
            context.Print(await context.Client.ClusterEventsAsync(ct).ConfigureAwait(false), events =>
            {
                var table = new Table().AddColumns("#", "time", "kind", "subject", "message");
                foreach (var e in events)
                {
                    var subject = string.Join(" ", new[] { e.Host, e.Vm, e.Volume }.Where(s => s is not null));
                    table.AddRow(e.Sequence.ToString(System.Globalization.CultureInfo.InvariantCulture), e.At.ToString("yyyy-MM-dd HH:mm:ss.fff", System.Globalization.CultureInfo.InvariantCulture), e.Kind, Markup.Escape(subject), Markup.Escape(e.Message));
                }

                CliContext.Write(table);
            })));
        return command;
    }

    private static void RenderStatus(ClusterStatusView status)
    {
        Console.Out.WriteLine($"cluster {status.Name} ({status.ClusterId})");
        Console.Out.WriteLine($"leader {status.Leader ?? "none"}, term {status.Term}, commit index {status.CommitIndex}, applied {status.AppliedIndex} (seen by {status.SeenBy})");
        Console.Out.WriteLine($"N+1 admission {(status.NPlusOne ? "on" : "off")}");
        if (status.Leases is { } leases)
        {
            Console.Out.WriteLine(FormattableString.Invariant(
                $"leases: renewed every {leases.Renewal.TotalSeconds:0.###} s, held {leases.Lease.TotalSeconds:0.###} s, a silent host failed after {leases.FailedAfter.TotalSeconds:0.###} s"));
        }
        var table = new Table().AddColumns("host", "role", "consensus", "peer api", "voting", "health", "memory", "fencing");
        foreach (var host in status.Hosts)
        {
            table.AddRow(
                host.Name + (host.IsLeader ? " *" : ""),
                FerryJson.Name(host.Role),
                host.ConsensusAddress,
                host.ApiAddress,
                host.Voting ? "yes" : "no",
                Markup.Escape(host.Fenced is { } fence ? $"{host.Health}, fenced since {fence.At:HH:mm:ss} ({fence.Reason})"
                    : host.Maintenance is { } maintenance ? $"{host.Health}, in maintenance since {maintenance.Since:HH:mm:ss}" : host.Health),
                host.Resources is { } r ? $"{host.UsedMiB}/{r.MemoryMiB - r.ReservedMiB} MiB" : host.Role == HostRole.Member ? "?" : "-",
                Markup.Escape(host.FenceAgent is { } agent ? string.Join(' ', agent.Command.Select(Path.GetFileName)) : host.Role == HostRole.Member ? "lease only" : "-"));
        }

        CliContext.Write(table);
    }
}
