using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Ferry.Agent.Api;
using Ferry.Lab;
using Spectre.Console;

namespace Ferry.Cli.Commands;

/// <summary>`ferry lab ...`: many hosts on this machine, each a network namespace with a real agent, and the faults to test them with.</summary>
internal static class LabCommands
{
    private static readonly JsonSerializerOptions Indented = new(FerryJson.Options) { WriteIndented = true };

    private static readonly Option<string> LabOption = new("--lab")
    {
        Description = "The lab's name (default: $FERRY_LAB or 'lab')",
        Recursive = true,
    };

    public static Command Build()
    {
        var lab = new Command("lab", "Hosts on this machine in network namespaces, linked by a bridge, with real faults: for tests and demos (needs root)")
        {
            LabOption,
        };
        lab.Subcommands.Add(Up());
        lab.Subcommands.Add(Down());
        lab.Subcommands.Add(List());
        lab.Subcommands.Add(Status());
        lab.Subcommands.Add(HostCommand("kill", "SIGKILL every process of a host (its agent and VMs): a power cut", (lab, host, ct) => lab.KillAsync(host, ct)));
        lab.Subcommands.Add(HostCommand("kill-agent", "SIGKILL a host's agent only: its VMs and watchdog run on", (lab, host, ct) => lab.KillAgentAsync(host, ct)));
        lab.Subcommands.Add(HostCommand("start", "Start a host's agent again on its data (after kill)", (lab, host, ct) => lab.StartAgentAsync(host, ct)));
        lab.Subcommands.Add(HostCommand("pause", "SIGSTOP every process of a host: it hangs, sockets open", (lab, host, ct) => lab.PauseAsync(host, ct)));
        lab.Subcommands.Add(HostCommand("resume", "SIGCONT every process of a paused host", (lab, host, ct) => lab.ResumeAsync(host, ct)));
        lab.Subcommands.Add(Partition());
        lab.Subcommands.Add(Heal());
        lab.Subcommands.Add(Slow());
        lab.Subcommands.Add(FenceAgent());
        return lab;
    }

    private static Command Up()
    {
        var nodes = new Option<int>("--nodes") { Description = "How many hosts (h1..hN)", DefaultValueFactory = _ => 3 };
        var members = new Option<int?>("--members") { Description = "How many of them (h1..hM) form a cluster named after the lab (default: all; 0: none)" };
        var dir = new Option<string?>("--dir") { Description = "Where the hosts keep their data and logs (default /var/lib/ferry-lab/NAME)" };
        var fence = new Option<bool>("--fence") { Description = "Give each member host the lab's fence agent (ferry lab fence-agent), which kills a failed host before its VMs run elsewhere" };
        var memory = new Option<string?>("--host-memory") { Description = "Memory each host tells placement it has, e.g. 4G (default: the machine's, which all hosts share)" };
        var command = new Command("up", "Create the lab: a bridge, a namespace and an agent per host, and a cluster of them") { nodes, members, dir, fence, memory };
        command.SetAction(LabAction(async (name, output, parse, ct) =>
        {
            var count = parse.GetValue(nodes);
            var clustered = parse.GetValue(members) ?? count;
            if (clustered < 0 || clustered > count)
            {
                return CliContext.Fail(FerryError.InvalidArgument($"--members {clustered} is outside 0..{count}"));
            }

            long? memoryMiB = null;
            if (parse.GetValue(memory) is { } memoryText)
            {
                if (!SizeParser.ParseMiB(memoryText).TryGetValue(out var parsed, out var memoryError))
                {
                    return CliContext.Fail(memoryError);
                }

                memoryMiB = parsed;
            }

            var claim = await LabRegistry.Default.ClaimAsync(name, count, parse.GetValue(dir) ?? Path.Combine("/var/lib/ferry-lab", name), ct, memoryMiB).ConfigureAwait(false);
            if (!claim.TryGetValue(out var record, out var error) || !record.Layout().TryGetValue(out var layout, out error))
            {
                return CliContext.Fail(error);
            }

            var lab = new Lab.Lab(layout, Lab.Lab.ThisFerry(), TimeProvider.System);
            var failure = await BringUpAsync(lab, clustered, parse.GetValue(fence), ct).ConfigureAwait(false);
            if (failure is not null || ct.IsCancellationRequested)
            {
                await lab.TearDownAsync(CancellationToken.None).ConfigureAwait(false);
                LabRegistry.Default.Release(name);
                return failure is null ? ExitCodes.Failure : CliContext.Fail(failure);
            }

            await PrintAsync(lab, output, ct).ConfigureAwait(false);
            if (output == OutputFormat.Table)
            {
                Console.Error.WriteLine($"talk to a host with: ferry --server {layout.Hosts[0].ApiUrl} ...   remove the lab with: ferry lab down --lab {name}");
            }

            return ExitCodes.Ok;
        }));
        return command;
    }

    private static async Task<FerryError?> BringUpAsync(Lab.Lab lab, int members, bool fence, CancellationToken ct)
    {
        if (await lab.BuildNetworkAsync(ct).ConfigureAwait(false) is { } networkError)
        {
            return networkError;
        }

        var started = await Task.WhenAll(lab.Layout.Hosts.Select(h => lab.StartAgentAsync(h, ct))).ConfigureAwait(false);
        if (started.FirstOrDefault(e => e is not null) is { } startError)
        {
            return startError;
        }

        if (members == 0)
        {
            return null;
        }

        var first = lab.Layout.Hosts[0];
        using var firstClient = new AgentClient(new Uri(first.ApiUrl));
        if (!(await firstClient.InitClusterAsync(new InitClusterRequest(lab.Layout.Name), ct).ConfigureAwait(false)).TryGetValue(out _, out var initError))
        {
            return initError;
        }

        foreach (var host in lab.Layout.Hosts.Skip(1).Take(members - 1))
        {
            if (!(await firstClient.JoinTokenAsync(new JoinTokenRequest(null), ct).ConfigureAwait(false)).TryGetValue(out var token, out var tokenError))
            {
                return tokenError;
            }

            using var client = new AgentClient(new Uri(host.ApiUrl));
            if (!(await client.JoinClusterAsync(new JoinClusterRequest(first.PeerAddress, token.Token, Witness: false), ct).ConfigureAwait(false)).TryGetValue(out _, out var joinError))
            {
                return joinError;
            }
        }

        foreach (var host in fence ? lab.Layout.Hosts.Take(members) : [])
        {
            var agent = new FenceAgentRequest([.. Lab.Lab.ThisFerry(), "lab", "fence-agent"], new Dictionary<string, string> { ["lab"] = lab.Layout.Name, ["plug"] = host.Name });
            if ((await firstClient.SetFenceAgentAsync(host.Name, agent, ct).ConfigureAwait(false)).Error is { } fenceError)
            {
                return fenceError;
            }
        }

        return null;
    }

    /// <summary>
    /// `ferry lab fence-agent`: a fence agent in the ClusterLabs way for lab hosts. It reads key=value lines
    /// on its standard input: action (off, on, reboot, status, monitor), plug (the host), lab (its lab).
    /// off kills every process of the host, as a power switch would; status exits 0 when its agent runs,
    /// 2 when it does not.
    /// </summary>
    private static Command FenceAgent()
    {
        var command = new Command("fence-agent", "A fence agent for lab hosts: reads action=off|on|reboot|status|monitor, plug=HOST and lab=NAME on standard input");
        command.SetAction(async (parse, ct) =>
        {
            var input = new Dictionary<string, string>(StringComparer.Ordinal);
            while (await Console.In.ReadLineAsync(ct).ConfigureAwait(false) is { } line)
            {
                var at = line.IndexOf('=', StringComparison.Ordinal);
                if (at > 0)
                {
                    input[line[..at].Trim()] = line[(at + 1)..].Trim();
                }
            }

            var name = input.GetValueOrDefault("lab") ?? parse.GetValue(LabOption) ?? System.Environment.GetEnvironmentVariable("FERRY_LAB") ?? "lab";
            if (!Open(name).TryGetValue(out var lab, out var error) || !lab.Layout.Host(input.GetValueOrDefault("plug") ?? input.GetValueOrDefault("port") ?? "").TryGetValue(out var host, out error))
            {
                return CliContext.Fail(error);
            }

            switch (input.GetValueOrDefault("action") ?? "reboot")
            {
                case "off":
                    await lab.KillAsync(host, ct).ConfigureAwait(false);
                    return ExitCodes.Ok;
                case "on":
                    return await lab.StartAgentAsync(host, ct).ConfigureAwait(false) is { } notOn && notOn.Code != ErrorCode.Conflict ? CliContext.Fail(notOn) : ExitCodes.Ok;
                case "reboot":
                    await lab.KillAsync(host, ct).ConfigureAwait(false);
                    return await lab.StartAgentAsync(host, ct).ConfigureAwait(false) is { } notBack ? CliContext.Fail(notBack) : ExitCodes.Ok;
                case "status":
                    return await lab.AgentPidAsync(host, ct).ConfigureAwait(false) is null ? 2 : ExitCodes.Ok;
                case "monitor":
                    return ExitCodes.Ok;
                case var other:
                    return CliContext.Fail(FerryError.InvalidArgument($"unknown fence action '{other}': off, on, reboot, status or monitor"));
            }
        });
        return command;
    }

    private static Command Down()
    {
        var command = new Command("down", "Kill every process of the lab and remove its namespaces, links and data");
        command.SetAction(LabAction(async (name, _, _, ct) =>
        {
            if (!Open(name).TryGetValue(out var lab, out var error))
            {
                return CliContext.Fail(error);
            }

            var problems = await lab.TearDownAsync(ct).ConfigureAwait(false);
            foreach (var problem in problems)
            {
                Console.Error.WriteLine($"error: {problem}");
            }

            if (problems.Count > 0)
            {
                return ExitCodes.Environment;
            }

            LabRegistry.Default.Release(name);
            return ExitCodes.Ok;
        }));
        return command;
    }

    private static Command List()
    {
        var command = new Command("list", "The labs on this machine");
        command.SetAction(LabAction((_, output, _, _) =>
        {
            var records = LabRegistry.Default.List();
            if (output == OutputFormat.Json)
            {
                Console.Out.WriteLine(JsonSerializer.Serialize(records, Indented));
                return Task.FromResult(ExitCodes.Ok);
            }

            var table = new Table().AddColumns("lab", "hosts", "network", "directory");
            foreach (var r in records)
            {
                table.AddRow(r.Name, r.Nodes.ToString(CultureInfo.InvariantCulture), LabLayout.SubnetOf(r.Network), Markup.Escape(r.Directory));
            }

            CliContext.Write(table);
            return Task.FromResult(ExitCodes.Ok);
        }));
        return command;
    }

    private static Command Status()
    {
        var command = new Command("status", "Each host: running, paused or down, its addresses, and the hosts it is cut from");
        command.SetAction(LabAction(async (name, output, _, ct) =>
        {
            if (!Open(name).TryGetValue(out var lab, out var error))
            {
                return CliContext.Fail(error);
            }

            await PrintAsync(lab, output, ct).ConfigureAwait(false);
            return ExitCodes.Ok;
        }));
        return command;
    }

    private static Command HostCommand(string verb, string description, Func<Lab.Lab, LabHost, CancellationToken, Task> act) =>
        HostCommand(verb, description, async (lab, host, ct) =>
        {
            await act(lab, host, ct).ConfigureAwait(false);
            return null;
        });

    private static Command HostCommand(string verb, string description, Func<Lab.Lab, LabHost, CancellationToken, Task<FerryError?>> act)
    {
        var hostName = new Argument<string>("host") { Description = "The host (h1..hN)" };
        var command = new Command(verb, description) { hostName };
        command.SetAction(LabAction(async (name, _, parse, ct) =>
        {
            if (!Open(name).TryGetValue(out var lab, out var error) || !lab.Layout.Host(parse.GetValue(hostName)!).TryGetValue(out var host, out error))
            {
                return CliContext.Fail(error);
            }

            return await act(lab, host, ct).ConfigureAwait(false) is { } failure ? CliContext.Fail(failure) : ExitCodes.Ok;
        }));
        return command;
    }

    private static Command Partition()
    {
        var group = new Argument<string[]>("hosts") { Description = "The hosts on one side", Arity = ArgumentArity.OneOrMore };
        var from = new Option<string[]>("--from") { Description = "The hosts on the other side (default: every other host)", AllowMultipleArgumentsPerToken = true };
        var command = new Command("partition", "Cut the links between some hosts and the others, both ways (this machine still reaches all)") { group, from };
        command.SetAction(LabAction(async (name, _, parse, ct) =>
        {
            if (!Open(name).TryGetValue(out var lab, out var error)
                || !LabPartition.Cuts(lab.Layout, parse.GetValue(group)!, parse.GetValue(from) ?? []).TryGetValue(out var cuts, out error))
            {
                return CliContext.Fail(error);
            }

            return await lab.CutAsync(cuts, ct).ConfigureAwait(false) is { } failure ? CliContext.Fail(failure) : ExitCodes.Ok;
        }));
        return command;
    }

    private static Command Heal()
    {
        var command = new Command("heal", "Restore every link: no partition, no slowing");
        command.SetAction(LabAction(async (name, _, _, ct) =>
        {
            if (!Open(name).TryGetValue(out var lab, out var error))
            {
                return CliContext.Fail(error);
            }

            return await lab.HealAsync(ct).ConfigureAwait(false) is { } failure ? CliContext.Fail(failure) : ExitCodes.Ok;
        }));
        return command;
    }

    private static Command Slow()
    {
        var hostName = new Argument<string>("host") { Description = "The host whose link to slow" };
        var delay = new Option<int?>("--delay") { Description = "Added delay each way, in milliseconds" };
        var loss = new Option<double?>("--loss") { Description = "Packets lost, in percent" };
        var rate = new Option<string?>("--rate") { Description = "Bandwidth limit each way, such as 10mbit" };
        var command = new Command("slow", "Slow a host's link (tc): delay, loss, rate; 'heal' undoes it") { hostName, delay, loss, rate };
        command.SetAction(LabAction(async (name, _, parse, ct) =>
        {
            var ms = parse.GetValue(delay);
            if (!Open(name).TryGetValue(out var lab, out var error)
                || !lab.Layout.Host(parse.GetValue(hostName)!).TryGetValue(out var host, out error)
                || !LinkShape.Create(ms is { } d ? TimeSpan.FromMilliseconds(d) : null, parse.GetValue(loss), parse.GetValue(rate)).TryGetValue(out var shape, out error))
            {
                return CliContext.Fail(error);
            }

            return await lab.SlowAsync(host, shape, ct).ConfigureAwait(false) is { } failure ? CliContext.Fail(failure) : ExitCodes.Ok;
        }));
        return command;
    }

    private static Result<Lab.Lab> Open(string name)
    {
        if (!LabRegistry.Default.Get(name).TryGetValue(out var record, out var error) || !record.Layout().TryGetValue(out var layout, out error))
        {
            return error;
        }

        return new Lab.Lab(layout, Lab.Lab.ThisFerry(), TimeProvider.System);
    }

    private static async Task PrintAsync(Lab.Lab lab, OutputFormat output, CancellationToken ct)
    {
        var layout = lab.Layout;
        var hosts = (await lab.StatusAsync(ct).ConfigureAwait(false)).Select(s => new LabHostView(
            s.Host.Name, s.State, s.Host.Namespace, s.Host.Address, s.Host.ApiUrl, s.Host.PeerAddress, s.Host.ReplicationAddress, s.AgentPid, s.Processes, s.CutFrom)).ToArray();
        var view = new LabView(layout.Name, layout.Bridge, layout.Subnet, layout.Directory, hosts);
        if (output == OutputFormat.Json)
        {
            Console.Out.WriteLine(JsonSerializer.Serialize(view, Indented));
            return;
        }

        Console.Out.WriteLine($"lab {view.Name}: bridge {view.Bridge}, network {view.Network}, data in {view.Directory}");
        Console.Out.WriteLine($"each host listens on its address: api {LabHost.ApiPort}, consensus {LabHost.ConsensusPort}, peer api {LabHost.PeerPort}, replication {LabHost.ReplicationPort}");
        var table = new Table().AddColumns("host", "state", "address", "agent pid", "processes", "cut from");
        foreach (var h in hosts)
        {
            table.AddRow(h.Name, FerryJson.Name(h.State), h.Address, h.AgentPid?.ToString(CultureInfo.InvariantCulture) ?? "-",
                h.Processes.Count.ToString(CultureInfo.InvariantCulture), h.CutFrom.Count == 0 ? "-" : string.Join(", ", h.CutFrom));
        }

        CliContext.Write(table);
    }

    /// <summary>Runs a lab command body after checking this machine can run labs; failures become one line and an exit code.</summary>
    private static Func<ParseResult, CancellationToken, Task<int>> LabAction(Func<string, OutputFormat, ParseResult, CancellationToken, Task<int>> body) =>
        async (parse, ct) =>
        {
            if (Lab.Lab.CheckEnvironment() is { } unfit)
            {
                return CliContext.Fail(unfit);
            }

            var name = parse.GetValue(LabOption) ?? System.Environment.GetEnvironmentVariable("FERRY_LAB") ?? "lab";
            if (LabLayout.ValidateName(name) is { } invalid)
            {
                return CliContext.Fail(invalid);
            }

            try
            {
                return await body(name, parse.GetValue(CliContext.OutputOption), parse, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return ExitCodes.Failure;
            }
            catch (Exception e) when (!parse.GetValue(CliContext.VerboseOption))
            {
                Console.Error.WriteLine($"error: {e.Message} (run with --verbose for details)");
                return ExitCodes.Failure;
            }
        };
}

/// <summary>A lab as `ferry lab status -o json` shows it.</summary>
internal sealed record LabView(string Name, string Bridge, string Network, string Directory, IReadOnlyList<LabHostView> Hosts);

internal sealed record LabHostView(
    string Name, LabHostState State, string Namespace, string Address, string Api, string PeerAddress, string ReplicationAddress, int? AgentPid, IReadOnlyList<int> Processes, IReadOnlyList<string> CutFrom);
