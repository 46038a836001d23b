using System.Globalization;
using System.Reflection;
using Ferry.Hypervisor;

namespace Ferry.Lab;

/// <summary>What runs in a lab host now.</summary>
public enum LabHostState
{
    /// <summary>Its agent runs.</summary>
    Running,

    /// <summary>Its processes are stopped (SIGSTOP), as a hung host's would be.</summary>
    Paused,

    /// <summary>No agent runs (killed, or never started).</summary>
    Down,
}

/// <summary>A host's state, its processes, and the hosts it cannot reach.</summary>
public sealed record LabHostStatus(LabHost Host, LabHostState State, int? AgentPid, IReadOnlyList<int> Processes, IReadOnlyList<string> CutFrom);

/// <summary>
/// Builds a lab's network and runs its hosts: the thin layer over ip, tc and signals. Every host
/// is a network namespace holding a real agent (and the QEMU processes the agent starts), so
/// killing or pausing a host is signalling every process in its namespace, and cutting a link is
/// a blackhole route in the namespaces on both sides.
/// </summary>
public sealed class Lab(LabLayout layout, IReadOnlyList<string> ferryCommand, TimeProvider time)
{
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan AgentStartTimeout = TimeSpan.FromSeconds(90);

    public LabLayout Layout => layout;

    /// <summary>How to run this same ferry: its apphost, or `dotnet ferry.dll`.</summary>
    public static IReadOnlyList<string> ThisFerry()
    {
        var process = Environment.ProcessPath ?? throw new InvalidOperationException("cannot tell which program runs ferry");
        return Path.GetFileNameWithoutExtension(process) == "dotnet"
            ? [process, Assembly.GetEntryAssembly()!.Location]
            : [process];
    }

    /// <summary>Labs need root (namespaces, links, routes) and iproute2.</summary>
    public static FerryError? CheckEnvironment()
    {
        if (!OperatingSystem.IsLinux())
        {
            return FerryError.Environment("ferry lab runs on Linux only (network namespaces)");
        }

        if (!Environment.IsPrivilegedProcess)
        {
            return FerryError.Environment("ferry lab needs root: it makes network namespaces, links and routes");
        }

        return ProcessRunner.Resolve("ip") is null || ProcessRunner.Resolve("tc") is null || ProcessRunner.Resolve("setsid") is null
            ? FerryError.Environment("ferry lab needs ip and tc (Debian package iproute2) and setsid (util-linux)")
            : null;
    }

    /// <summary>The bridge, and per host a namespace linked to it by a veth pair.</summary>
    public async Task<FerryError?> BuildNetworkAsync(CancellationToken ct)
    {
        var bridge = layout.Bridge;
        List<string[]> steps =
        [
            ["link", "add", bridge, "type", "bridge"],
            ["addr", "add", $"{layout.BridgeAddress}/{LabLayout.PrefixLength}", "dev", bridge],
            ["link", "set", bridge, "up"],
        ];
        foreach (var host in layout.Hosts)
        {
            string[] inside = ["-n", host.Namespace];
            steps.Add(["netns", "add", host.Namespace]);
            steps.Add(["link", "add", host.Link, "type", "veth", "peer", "name", LabLayout.HostInterface, "netns", host.Namespace]);
            steps.Add(["link", "set", host.Link, "master", bridge, "up"]);
            steps.Add([.. inside, "addr", "add", $"{host.Address}/{LabLayout.PrefixLength}", "dev", LabLayout.HostInterface]);
            steps.Add([.. inside, "link", "set", LabLayout.HostInterface, "up"]);
            steps.Add([.. inside, "link", "set", "lo", "up"]);
        }

        foreach (var step in steps)
        {
            if (await IpAsync(step, ct).ConfigureAwait(false) is { } error)
            {
                return error;
            }
        }

        return null;
    }

    /// <summary>Starts the host's agent in its namespace, detached from this process, and waits until its API answers.</summary>
    public async Task<FerryError?> StartAgentAsync(LabHost host, CancellationToken ct)
    {
        if (await AgentPidAsync(host, ct).ConfigureAwait(false) is { } running)
        {
            return FerryError.Conflict($"host {host.Name} runs already (agent pid {running})");
        }

        Directory.CreateDirectory(host.DataDirectory);

        // sh redirects the agent's output to its log; setsid -f detaches it into a session of its own,
        // so it outlives this command and no terminal signal reaches it.
        var result = await RunAsync(
            "sh",
            ["-c", "exec setsid -f \"$@\" >>\"$0\" 2>&1 </dev/null", host.LogFile, "ip", "netns", "exec", host.Namespace, .. ferryCommand, .. host.AgentArguments()],
            ct).ConfigureAwait(false);
        if (result.ExitCode != 0)
        {
            return FerryError.Environment($"could not start the agent of {host.Name}: {result.StandardError.Trim()}");
        }

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var started = time.GetTimestamp();
        while (time.GetElapsedTime(started) < AgentStartTimeout)
        {
            try
            {
                using var response = await http.GetAsync(new Uri($"{host.ApiUrl}/api/v1/health"), ct).ConfigureAwait(false);
                if (response.IsSuccessStatusCode)
                {
                    return null;
                }
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
            {
                // Not listening yet.
            }

            if (await AgentPidAsync(host, ct).ConfigureAwait(false) is null && time.GetElapsedTime(started) > TimeSpan.FromSeconds(2))
            {
                return FerryError.Environment($"the agent of {host.Name} exited: {Tail(host.LogFile)}");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(100), time, ct).ConfigureAwait(false);
        }

        return FerryError.Unavailable($"the agent of {host.Name} did not answer within {AgentStartTimeout.TotalSeconds} s: {Tail(host.LogFile)}");
    }

    /// <summary>SIGKILL to every process in the host's namespace: the agent and its VMs die at once, as with a power cut.</summary>
    public async Task KillAsync(LabHost host, CancellationToken ct)
    {
        // A process may be forking while we look; a few rounds catch its children too.
        for (var round = 0; round < 10 && await ProcessesAsync(host, ct).ConfigureAwait(false) is { Count: > 0 } pids; round++)
        {
            await SignalAsync("KILL", pids, ct).ConfigureAwait(false);
            await Task.Delay(TimeSpan.FromMilliseconds(50), time, ct).ConfigureAwait(false);
        }
    }

    /// <summary>SIGKILL to the host's agent alone: its VMs and its watchdog run on.</summary>
    public async Task<FerryError?> KillAgentAsync(LabHost host, CancellationToken ct)
    {
        if (await AgentPidAsync(host, ct).ConfigureAwait(false) is not { } pid)
        {
            return FerryError.WrongState($"the agent of {host.Name} does not run");
        }

        await SignalAsync("KILL", [pid], ct).ConfigureAwait(false);
        return null;
    }

    /// <summary>SIGSTOP to every process of the host: it hangs with its sockets open.</summary>
    public async Task PauseAsync(LabHost host, CancellationToken ct) =>
        await SignalAsync("STOP", await ProcessesAsync(host, ct).ConfigureAwait(false), ct).ConfigureAwait(false);

    public async Task ResumeAsync(LabHost host, CancellationToken ct) =>
        await SignalAsync("CONT", await ProcessesAsync(host, ct).ConfigureAwait(false), ct).ConfigureAwait(false);

    public async Task<FerryError?> CutAsync(IEnumerable<LinkCut> cuts, CancellationToken ct)
    {
        foreach (var cut in cuts)
        {
            // replace, not add: cutting a link that is cut already changes nothing.
            if (await IpAsync(["-n", cut.From.Namespace, "route", "replace", "blackhole", $"{cut.To.Address}/32"], ct).ConfigureAwait(false) is { } error)
            {
                return error;
            }
        }

        return null;
    }

    /// <summary>Every link restored: no cut, no slowing.</summary>
    public async Task<FerryError?> HealAsync(CancellationToken ct)
    {
        foreach (var host in layout.Hosts)
        {
            if (await IpAsync(["-n", host.Namespace, "route", "flush", "type", "blackhole"], ct).ConfigureAwait(false) is { } error)
            {
                return error;
            }

            await RunAsync("tc", ["-n", host.Namespace, "qdisc", "del", "dev", LabLayout.HostInterface, "root"], ct).ConfigureAwait(false);
            await RunAsync("tc", ["qdisc", "del", "dev", host.Link, "root"], ct).ConfigureAwait(false);
        }

        return null;
    }

    /// <summary>Shapes the host's link both ways: what it sends (inside its namespace) and what it receives (the bridge side).</summary>
    public async Task<FerryError?> SlowAsync(LabHost host, LinkShape shape, CancellationToken ct)
    {
        foreach (var (prefix, device) in new (string[], string)[] { (["-n", host.Namespace], LabLayout.HostInterface), ([], host.Link) })
        {
            var result = await RunAsync("tc", [.. prefix, "qdisc", "replace", "dev", device, "root", .. shape.Qdisc()], ct).ConfigureAwait(false);
            if (result.ExitCode != 0)
            {
                return shape.NeedsNetem && result.StandardError.Contains("qdisc kind is unknown", StringComparison.Ordinal)
                    ? FerryError.Environment("this kernel has no netem (sch_netem), so --delay and --loss are unavailable here; --rate alone works")
                    : FerryError.Environment($"tc failed on {host.Name}: {result.StandardError.Trim()}");
            }
        }

        return null;
    }

    public async Task<IReadOnlyList<LabHostStatus>> StatusAsync(CancellationToken ct)
    {
        var statuses = new List<LabHostStatus>();
        foreach (var host in layout.Hosts)
        {
            var pid = await AgentPidAsync(host, ct).ConfigureAwait(false);
            var state = pid is null ? LabHostState.Down : HostProcess.IsStopped(pid.Value) ? LabHostState.Paused : LabHostState.Running;
            statuses.Add(new LabHostStatus(host, state, pid, await ProcessesAsync(host, ct).ConfigureAwait(false), await CutFromAsync(host, ct).ConfigureAwait(false)));
        }

        return statuses;
    }

    /// <summary>Kills every process of the lab and removes its namespaces, links and files; carries on past failures and reports them.</summary>
    public async Task<IReadOnlyList<string>> TearDownAsync(CancellationToken ct)
    {
        var problems = new List<string>();
        foreach (var host in layout.Hosts)
        {
            await KillAsync(host, ct).ConfigureAwait(false);
            if (await ProcessesAsync(host, ct).ConfigureAwait(false) is { Count: > 0 } left)
            {
                problems.Add($"{host.Name}: processes {string.Join(", ", left)} survived SIGKILL");
            }

            if (NamespaceExists(host) && await IpAsync(["netns", "del", host.Namespace], ct).ConfigureAwait(false) is { } error)
            {
                problems.Add(error.Message);
            }

            // The pair goes with the namespace, unless something still holds the namespace (a process still exiting).
            if (Directory.Exists($"/sys/class/net/{host.Link}") && await IpAsync(["link", "del", host.Link], ct).ConfigureAwait(false) is { } linkError
                && Directory.Exists($"/sys/class/net/{host.Link}"))
            {
                problems.Add(linkError.Message);
            }
        }

        if (Directory.Exists($"/sys/class/net/{layout.Bridge}") && await IpAsync(["link", "del", layout.Bridge], ct).ConfigureAwait(false) is { } bridgeError)
        {
            problems.Add(bridgeError.Message);
        }

        try
        {
            if (Directory.Exists(layout.Directory))
            {
                Directory.Delete(layout.Directory, recursive: true);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            problems.Add($"could not remove {layout.Directory}: {e.Message}");
        }

        return problems;
    }

    /// <summary>The pid of the host's agent: a process in its namespace running `agent` on its data directory.</summary>
    public async Task<int?> AgentPidAsync(LabHost host, CancellationToken ct)
    {
        foreach (var pid in await ProcessesAsync(host, ct).ConfigureAwait(false))
        {
            if (HostProcess.CommandLine(pid) is { } args && args.Contains("agent") && args.Contains(host.DataDirectory))
            {
                return pid;
            }
        }

        return null;
    }

    /// <summary>The live processes in the host's namespace (only the lab starts processes there).</summary>
    public async Task<IReadOnlyList<int>> ProcessesAsync(LabHost host, CancellationToken ct)
    {
        if (!NamespaceExists(host))
        {
            return [];
        }

        var result = await RunAsync("ip", ["netns", "pids", host.Namespace], ct).ConfigureAwait(false);
        return result.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(line => int.Parse(line, CultureInfo.InvariantCulture))
            .Where(HostProcess.IsAlive)
            .ToArray();
    }

    private static bool NamespaceExists(LabHost host) => File.Exists($"/run/netns/{host.Namespace}");

    /// <summary>The hosts whose address has a blackhole route in this host's namespace.</summary>
    private async Task<IReadOnlyList<string>> CutFromAsync(LabHost host, CancellationToken ct)
    {
        if (!NamespaceExists(host))
        {
            return [];
        }

        var result = await RunAsync("ip", ["-n", host.Namespace, "route", "show", "type", "blackhole"], ct).ConfigureAwait(false);
        var addresses = result.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(words => words.Length >= 2)
            .Select(words => words[1])
            .ToHashSet();
        return layout.Hosts.Where(h => addresses.Contains(h.Address)).Select(h => h.Name).ToArray();
    }

    private async Task SignalAsync(string signal, IReadOnlyList<int> pids, CancellationToken ct)
    {
        if (pids.Count > 0)
        {
            await RunAsync("kill", [$"-{signal}", .. pids.Select(p => p.ToString(CultureInfo.InvariantCulture))], ct).ConfigureAwait(false);
        }
    }

    private async Task<FerryError?> IpAsync(IReadOnlyList<string> args, CancellationToken ct)
    {
        var result = await RunAsync("ip", args, ct).ConfigureAwait(false);
        return result.ExitCode == 0
            ? null
            : FerryError.Environment($"ip {string.Join(' ', args)}: {result.StandardError.Trim()}");
    }

    private Task<ProcessResult> RunAsync(string program, IReadOnlyList<string> args, CancellationToken ct) =>
        ProcessRunner.RunAsync(program, args, CommandTimeout, time, ct);

    private static string Tail(string logFile) =>
        File.Exists(logFile) ? string.Join(" | ", File.ReadLines(logFile).TakeLast(5)) : "(no log)";
}
