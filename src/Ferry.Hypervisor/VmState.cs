namespace Ferry.Hypervisor;

/// <summary>What a VM is doing now, as the agent observes it.</summary>
public enum VmState
{
    Stopped,
    Starting,
    Running,
    Paused,
    Stopping,
    Crashed,
}

/// <summary>What the user asked the VM to be; survives agent restarts (and is what HA will restore).</summary>
public enum DesiredState
{
    Stopped,
    Running,
}
