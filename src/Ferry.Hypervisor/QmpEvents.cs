using System.Text.Json;

namespace Ferry.Hypervisor;

/// <summary>Reads the fields of QMP events that Ferry acts on.</summary>
public static class QmpEvents
{
    /// <summary>SHUTDOWN's data: {"guest": bool, "reason": "guest-shutdown" | "host-qmp-quit" | ...}.</summary>
    public static (bool Guest, string? Reason) Shutdown(QmpEvent e) =>
        e.Data.ValueKind != JsonValueKind.Object
            ? (false, null)
            : (e.Data.TryGetProperty("guest", out var g) && g.ValueKind == JsonValueKind.True,
               e.Data.TryGetProperty("reason", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString() : null);

    public static string DescribeShutdown(QmpEvent e)
    {
        var (guest, reason) = Shutdown(e);
        return $"{reason ?? "unknown reason"}{(guest ? ", initiated by the guest" : string.Empty)}";
    }
}
