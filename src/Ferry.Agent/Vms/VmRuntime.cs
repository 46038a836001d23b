using Ferry.Core;
using Ferry.Hypervisor;

namespace Ferry.Agent.Vms;

/// <summary>
/// The agent's live view of one VM. <see cref="Gate"/> serializes user operations (which await);
/// <see cref="StateLock"/> guards the fields, which QMP events and the exit watcher also change.
/// </summary>
internal sealed class VmRuntime(VmState initial)
{
    public SemaphoreSlim Gate { get; } = new(1, 1);

    public Lock StateLock { get; } = new();

    public VmState State { get; set; } = initial;

    public QemuInstance? Instance { get; set; }

    /// <summary>Set when the agent itself asked QEMU to end, so the exit is a stop and not a crash.</summary>
    public bool StopRequested { get; set; }

    public Accelerator? Accelerator { get; set; }

    public DateTimeOffset? StartedAt { get; set; }

    public string? LastExit { get; set; }

    /// <summary>
    /// Which disk errors QEMU reported are worth an event: a guest paused by a full disk and resumed (by a
    /// cluster that wants it running) fails the same way again each time, which is one event a minute, not one each.
    /// </summary>
    public RepeatFilter IoErrors { get; } = new(TimeSpan.FromMinutes(1));

    /// <summary>Watches the current instance until it exits; awaited by stop and on shutdown.</summary>
    public Task ExitWatcher { get; set; } = Task.CompletedTask;
}
