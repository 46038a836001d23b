using Ferry.Hypervisor;

namespace Ferry.Cluster.State;

public enum VmDesiredState
{
    Stopped,
    Running,
}

/// <summary>A VM as the cluster wants it: its spec, whether it should run, and on which host.</summary>
/// <param name="Host">The one host the VM is placed on (null: not placed). A VM runs only where it is placed.</param>
public sealed record VmRecord(VmSpec Spec, VmDesiredState Desired, string? Host, DateTimeOffset DefinedAt)
{
    public string Name => Spec.Name;
}
