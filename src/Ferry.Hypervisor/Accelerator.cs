namespace Ferry.Hypervisor;

public enum Accelerator
{
    Tcg,
    Kvm,
}

/// <summary>What the operator asked for; Auto means KVM only where a probe boot shows it works.</summary>
public enum AcceleratorChoice
{
    Auto,
    Kvm,
    Tcg,
}
