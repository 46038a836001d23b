using Ferry.Hypervisor;

namespace Ferry.Agent.Vms;

/// <summary>A VM as the registry stores it durably: its spec and the state the user wants.</summary>
/// <param name="Managed">Defined by the cluster's local manager, which starts, stops and forgets it; the local API does not.</param>
public sealed record VmRecord(VmSpec Spec, DesiredState Desired, DateTimeOffset CreatedAt, bool Managed = false)
{
    public string Name => Spec.Name;
}
