using Ferry.Hypervisor;

namespace Ferry.Agent.Vms;

/// <summary>A VM as the registry stores it durably: its spec and the state the user wants.</summary>
public sealed record VmRecord(VmSpec Spec, DesiredState Desired, DateTimeOffset CreatedAt)
{
    public string Name => Spec.Name;
}
