namespace Ferry.Hypervisor;

/// <summary>What a VM is: the hypervisor-neutral description the user declares.</summary>
public sealed record VmSpec
{
    public required string Name { get; init; }

    public int VCpus { get; init; } = 1;

    public long MemoryMiB { get; init; } = 256;

    public IReadOnlyList<DiskSpec> Disks { get; init; } = [];

    public IReadOnlyList<NicSpec> Nics { get; init; } = [];

    /// <summary>Direct kernel boot; when absent the VM boots from its first disk.</summary>
    public KernelBoot? Kernel { get; init; }

    /// <summary>An http(s) URL, as the VM's host reaches it, that answers 2xx once the guest is healthy (none: running counts as healthy).</summary>
    public string? HealthCheck { get; init; }
}

/// <summary>
/// A disk: a local image file (raw or qcow2) at <paramref name="Path"/>, or a Ferry volume named by
/// <paramref name="Volume"/>, attached over NBD from the local agent. Exactly one of the two is set.
/// </summary>
public sealed record DiskSpec(string? Path, string Format = "raw", bool ReadOnly = false, string? Volume = null)
{
    public static DiskSpec ForVolume(string volume, bool readOnly = false) => new(null, "raw", readOnly, volume);
}

public enum NicMode
{
    /// <summary>QEMU user-mode networking with host port forwards (lab, demo, single host).</summary>
    User,

    /// <summary>A tap device attached to a host bridge through qemu-bridge-helper.</summary>
    Bridge,
}

public sealed record NicSpec
{
    public NicMode Mode { get; init; } = NicMode.User;

    public IReadOnlyList<PortForward> Forwards { get; init; } = [];

    /// <summary>Host bridge for <see cref="NicMode.Bridge"/>.</summary>
    public string? Bridge { get; init; }

    public string? Mac { get; init; }
}

/// <summary>Forwards a host TCP port to a guest port (user-mode networking only).</summary>
public sealed record PortForward(int HostPort, int GuestPort, string HostAddress = "127.0.0.1");

public sealed record KernelBoot(string Kernel, string? Initrd = null, string? Append = null);
