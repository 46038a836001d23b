using System.Globalization;

namespace Ferry.Agent.Cluster;

/// <summary>
/// The lease as this host holds it, on the monotonic clock since boot (the same for every process of
/// the host): when it last sent a renewal the leader acknowledged, and by when it must have fenced
/// itself if no other is. Kept in a file, replaced whole on each acknowledged renewal: an agent that
/// restarts while its VMs run on knows how much of the lease is left, and the watchdog kills the VMs
/// when the deadline passes and nobody renewed. The boot's id is kept with it: after a reboot the
/// times mean nothing (and no VM survived it).
/// </summary>
internal sealed record LeaseRecord(TimeSpan Sent, TimeSpan FenceBy)
{
    public const string FileName = "lease";

    private const string BootIdPath = "/proc/sys/kernel/random/boot_id";

    public static async Task<LeaseRecord?> ReadAsync(string path, CancellationToken ct)
    {
        try
        {
            var parts = (await File.ReadAllTextAsync(path, ct).ConfigureAwait(false)).Split(' ', StringSplitOptions.TrimEntries);
            return parts.Length == 3 && parts[0] == await BootIdAsync(ct).ConfigureAwait(false)
                && long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var sent)
                && long.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var fenceBy)
                ? new LeaseRecord(TimeSpan.FromTicks(sent), TimeSpan.FromTicks(fenceBy))
                : null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>Replaces the record at once (a reader never sees half of it); not flushed: a crash of the machine ends its VMs too.</summary>
    public async Task WriteAsync(string path, CancellationToken ct)
    {
        var boot = await BootIdAsync(ct).ConfigureAwait(false);
        var text = string.Create(CultureInfo.InvariantCulture, $"{boot} {Sent.Ticks} {FenceBy.Ticks}");
        var temporary = path + ".new";
        await File.WriteAllTextAsync(temporary, text, ct).ConfigureAwait(false);
        File.Move(temporary, path, overwrite: true);
    }

    private static async Task<string> BootIdAsync(CancellationToken ct) => (await File.ReadAllTextAsync(BootIdPath, ct).ConfigureAwait(false)).Trim();
}
