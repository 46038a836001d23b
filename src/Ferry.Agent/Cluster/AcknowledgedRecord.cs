using System.Globalization;

namespace Ferry.Agent.Cluster;

/// <summary>
/// When this host last sent a renewal the leader acknowledged, on the monotonic clock since boot, kept in
/// a file so that an agent that restarts while its VMs run on knows how much of the lease is left. The
/// boot's id is kept with it: after a reboot the time means nothing (and no VM survived it).
/// </summary>
internal static class AcknowledgedRecord
{
    private const string BootIdPath = "/proc/sys/kernel/random/boot_id";

    public static async Task<TimeSpan?> ReadAsync(string path, CancellationToken ct)
    {
        try
        {
            var parts = (await File.ReadAllTextAsync(path, ct).ConfigureAwait(false)).Split(' ', StringSplitOptions.TrimEntries);
            return parts.Length == 2 && parts[0] == await BootIdAsync(ct).ConfigureAwait(false) && long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var ticks)
                ? TimeSpan.FromTicks(ticks)
                : null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>Overwrites the record; not flushed: a crash of the machine ends its VMs too.</summary>
    public static async Task WriteAsync(string path, TimeSpan sent, CancellationToken ct) =>
        await File.WriteAllTextAsync(path, $"{await BootIdAsync(ct).ConfigureAwait(false)} {sent.Ticks.ToString(CultureInfo.InvariantCulture)}", ct).ConfigureAwait(false);

    private static async Task<string> BootIdAsync(CancellationToken ct) => (await File.ReadAllTextAsync(BootIdPath, ct).ConfigureAwait(false)).Trim();
}
