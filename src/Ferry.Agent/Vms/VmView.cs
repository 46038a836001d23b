using Ferry.Hypervisor;

namespace Ferry.Agent.Vms;

/// <summary>A VM as the API and CLI show it.</summary>
/// <param name="Managed">The cluster runs it (start, stop and delete go through the cluster).</param>
/// <param name="Host">In a cluster: the host it is placed on.</param>
/// <param name="Waiting">In a cluster: why a VM that should run does not yet.</param>
public sealed record VmView(
    string Name,
    VmState State,
    DesiredState Desired,
    int? Pid,
    Accelerator? Accelerator,
    DateTimeOffset? StartedAt,
    string? LastExit,
    VmSpec Spec,
    bool Managed = false,
    string? Host = null,
    string? Waiting = null);
