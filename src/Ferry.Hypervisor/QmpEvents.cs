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

    /// <summary>
    /// BLOCK_IO_ERROR's data, in words: {"device", "node-name", "operation": "read" | "write", "action":
    /// "stop" | "report" | "ignore", "nospace": bool, "reason"}. With "stop" (QEMU's default for a full
    /// disk) the guest is paused and retries the request when resumed.
    /// </summary>
    public static string DescribeIoError(QmpEvent e)
    {
        string? Text(string name) =>
            e.Data.ValueKind == JsonValueKind.Object && e.Data.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

        var noSpace = e.Data.ValueKind == JsonValueKind.Object && e.Data.TryGetProperty("nospace", out var n) && n.ValueKind == JsonValueKind.True;
        var disk = Text("device") is { Length: > 0 } device ? device : Text("node-name") ?? "?";
        var what = $"a {Text("operation") ?? "request"} on disk {disk} failed: {(noSpace ? "no space left on the disk's storage" : Text("reason") ?? "I/O error")}";
        return Text("action") switch
        {
            "stop" => $"{what}; the guest is paused, and retries it when resumed (ferry vm resume){(noSpace ? " once there is room" : string.Empty)}",
            "report" => $"{what}; the guest was told",
            _ => $"{what}; QEMU ignored it",
        };
    }
}
