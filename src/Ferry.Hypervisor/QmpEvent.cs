using System.Text.Json;

namespace Ferry.Hypervisor;

/// <summary>An asynchronous QMP event such as SHUTDOWN, STOP, RESUME or GUEST_PANICKED.</summary>
public sealed record QmpEvent(string Name, JsonElement Data, DateTimeOffset Timestamp);
