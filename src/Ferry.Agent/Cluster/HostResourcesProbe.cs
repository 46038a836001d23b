using System.Globalization;
using Ferry.Cluster.State;

namespace Ferry.Agent.Cluster;

/// <summary>What this host gives placement: its memory and CPUs (or what the operator said), and its reserve.</summary>
internal static class HostResourcesProbe
{
    public static HostResources Read(AgentOptions options) =>
        new(options.MemoryMiB ?? MemTotalMiB() ?? 0, options.Cpus ?? Environment.ProcessorCount, options.ReservedMiB);

    /// <summary>MemTotal from /proc/meminfo ("MemTotal:  24576000 kB"), or null when it cannot be read.</summary>
    private static long? MemTotalMiB()
    {
        try
        {
            var line = File.ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("MemTotal:", StringComparison.Ordinal));
            var fields = line?.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return fields is [_, var kib, ..] && long.TryParse(kib, NumberStyles.None, CultureInfo.InvariantCulture, out var value) ? value / 1024 : null;
        }
        catch (IOException)
        {
            return null;
        }
    }
}
