using Ferry.Hypervisor;

namespace Ferry.Agent.Vms;

/// <summary>A VM as the API and CLI show it.</summary>
public sealed record VmView(
    string Name,
    VmState State,
    DesiredState Desired,
    int? Pid,
    Accelerator? Accelerator,
    DateTimeOffset? StartedAt,
    string? LastExit,
    VmSpec Spec);
