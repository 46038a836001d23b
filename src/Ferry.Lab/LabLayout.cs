using System.Globalization;
using System.Text.RegularExpressions;

namespace Ferry.Lab;

/// <summary>One host of a lab: its network namespace, its address on the lab's bridge, and where its agent keeps its data.</summary>
/// <param name="MemoryMiB">Memory its agent tells placement it has (null: the machine's, shared by every host).</param>
public sealed record LabHost(string Name, int Index, string Namespace, string Address, string Link, string DataDirectory, string LogFile, long? MemoryMiB = null)
{
    public const int ApiPort = 7480;
    public const int ConsensusPort = 7470;
    public const int PeerPort = 7471;
    public const int ReplicationPort = 7472;

    public string ApiUrl => $"http://{Address}:{ApiPort.ToString(CultureInfo.InvariantCulture)}";

    public string PeerAddress => $"{Address}:{PeerPort.ToString(CultureInfo.InvariantCulture)}";

    public string ReplicationAddress => $"{Address}:{ReplicationPort.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>The `ferry agent` arguments that make this host's agent listen on its lab address.</summary>
    public IReadOnlyList<string> AgentArguments() =>
    [
        "agent",
        "--data", DataDirectory,
        "--host-name", Name,
        "--listen", ApiUrl,
        "--consensus-listen", $"{Address}:{ConsensusPort.ToString(CultureInfo.InvariantCulture)}",
        "--peer-listen", PeerAddress,
        "--replication-listen", ReplicationAddress,

        // Lab hosts share one machine: none of them may arm its hardware watchdog.
        "--watchdog-device", "none",
        .. MemoryMiB is { } memory ? ["--memory", $"{memory.ToString(CultureInfo.InvariantCulture)}M"] : Array.Empty<string>(),
    ];
}

/// <summary>
/// Names and addresses of a lab, a pure function of its name, its network number and its size: a
/// bridge <c>fl-NAME</c> on this machine with address 10.77.NET.1, and per host a namespace
/// <c>ferry-NAME-hI</c> whose <c>eth0</c> (10.77.NET.(10+I)) is a veth pair's end, the other end
/// (<c>fl-NAME-I</c>) on the bridge.
/// </summary>
public sealed partial record LabLayout(string Name, int Network, string Directory, IReadOnlyList<LabHost> Hosts)
{
    public const int MaxHosts = 32;
    public const int MaxNetwork = 250;

    /// <summary>The interface inside each host's namespace.</summary>
    public const string HostInterface = "eth0";

    public string Bridge => $"fl-{Name}";

    public string BridgeAddress => $"{Prefix(Network)}.1";

    public string Subnet => SubnetOf(Network);

    public static string SubnetOf(int network) => $"{Prefix(network)}.0/{PrefixLength.ToString(CultureInfo.InvariantCulture)}";

    private static string Prefix(int network) => $"10.77.{network.ToString(CultureInfo.InvariantCulture)}";

    public const int PrefixLength = 24;

    public LabHost this[string host] => Hosts.Single(h => h.Name == host);

    public LabHost? Find(string host) => Hosts.FirstOrDefault(h => h.Name == host);

    public Result<LabHost> Host(string host) =>
        Find(host) is { } found
            ? found
            : FerryError.NotFound($"lab '{Name}' has no host '{host}' (hosts: {string.Join(", ", Hosts.Select(h => h.Name))})");

    public static Result<LabLayout> Create(string name, int network, int nodes, string directory, long? hostMemoryMiB = null)
    {
        if (ValidateName(name) is { } error)
        {
            return error;
        }

        if (nodes is < 1 or > MaxHosts)
        {
            return FerryError.InvalidArgument($"a lab has 1 to {MaxHosts} hosts, not {nodes}");
        }

        if (network is < 1 or > MaxNetwork)
        {
            return FerryError.InvalidArgument($"lab network {network} is outside 1..{MaxNetwork}");
        }

        var hosts = Enumerable.Range(1, nodes).Select(i =>
        {
            var index = i.ToString(CultureInfo.InvariantCulture);
            var hostDirectory = Path.Combine(directory, $"h{index}");
            return new LabHost(
                $"h{index}",
                i,
                $"ferry-{name}-h{index}",
                $"{Prefix(network)}.{(10 + i).ToString(CultureInfo.InvariantCulture)}",
                $"fl-{name}-{index}",
                Path.Combine(hostDirectory, "data"),
                Path.Combine(hostDirectory, "agent.log"),
                hostMemoryMiB);
        }).ToArray();
        return new LabLayout(name, network, directory, hosts);
    }

    /// <summary>Lab names become parts of interface names, which Linux limits to 15 characters.</summary>
    public static FerryError? ValidateName(string name) =>
        NamePattern().IsMatch(name)
            ? null
            : FerryError.InvalidArgument($"invalid lab name '{name}': 1 to 8 lowercase letters and digits, starting with a letter");

    [GeneratedRegex("^[a-z][a-z0-9]{0,7}$")]
    private static partial Regex NamePattern();
}
