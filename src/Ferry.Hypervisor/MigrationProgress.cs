using System.Text.Json;

namespace Ferry.Hypervisor;

/// <summary>How a live migration may go: the pause it may cause at the end, and the bandwidth it may use.</summary>
public sealed record MigrationSettings(TimeSpan DowntimeLimit, long BandwidthBytesPerSecond);

/// <summary>
/// An outgoing migration as QEMU's query-migrate tells it. <paramref name="Status"/> is QEMU's:
/// none, setup, active, device, completed, failed, cancelling, cancelled, ...
/// </summary>
/// <param name="Downtime">How long the VM was paused at the switch-over, as QEMU measured it (once completed).</param>
public sealed record MigrationProgress(string Status, TimeSpan? TotalTime, TimeSpan? Downtime, long TransferredBytes, long RemainingBytes, string? Error)
{
    public bool Completed => Status == "completed";

    public bool Failed => Status is "failed" or "cancelled";

    public static MigrationProgress From(JsonElement reply)
    {
        var ram = reply.TryGetProperty("ram", out var r) ? r : default;
        return new MigrationProgress(
            reply.TryGetProperty("status", out var status) ? status.GetString() ?? "none" : "none",
            Milliseconds(reply, "total-time"),
            Milliseconds(reply, "downtime"),
            Number(ram, "transferred"),
            Number(ram, "remaining"),
            reply.TryGetProperty("error-desc", out var error) ? error.GetString() : null);
    }

    private static TimeSpan? Milliseconds(JsonElement e, string name) =>
        e.TryGetProperty(name, out var value) && value.TryGetInt64(out var ms) ? TimeSpan.FromMilliseconds(ms) : null;

    private static long Number(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var value) && value.TryGetInt64(out var n) ? n : 0;
}
