namespace Ferry.Hypervisor;

/// <summary>How a QEMU process ended, as far as QMP told us before the connection closed.</summary>
/// <param name="ShutdownSeen">QEMU announced a SHUTDOWN event (orderly exit).</param>
/// <param name="GuestInitiated">The guest itself powered off (SHUTDOWN with guest=true).</param>
/// <param name="Reason">QMP's shutdown reason, or why we think the process ended.</param>
public sealed record QemuExit(bool ShutdownSeen, bool GuestInitiated, bool Panicked, string Reason);
