using System.Text.RegularExpressions;

namespace Ferry.Hypervisor;

/// <summary>
/// Checks a VM spec before anything is created, so that bad input never leaves a half-made VM.
/// Pure: the file system and the host's size come in as arguments.
/// </summary>
public static partial class VmSpecValidator
{
    public const int MaxVCpus = 256;
    public const long MinMemoryMiB = 16;

    public static FerryError? Validate(VmSpec spec, Func<string, bool> fileExists, Func<string, bool> volumeExists, long hostMemoryMiB)
    {
        if (!ResourceName.IsValid(spec.Name))
        {
            return FerryError.InvalidArgument($"invalid VM name '{spec.Name}': {ResourceName.Rule}");
        }

        if (spec.HealthCheck is { } health && (!Uri.TryCreate(health, UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https")))
        {
            return FerryError.InvalidArgument($"invalid health check '{health}' for VM '{spec.Name}': give an http or https URL, e.g. http://127.0.0.1:8080/health");
        }

        if (spec.VCpus < 1 || spec.VCpus > MaxVCpus)
        {
            return FerryError.InvalidArgument($"invalid vCPU count {spec.VCpus} for VM '{spec.Name}': must be between 1 and {MaxVCpus}");
        }

        if (spec.MemoryMiB < MinMemoryMiB)
        {
            return FerryError.InvalidArgument($"invalid memory size {spec.MemoryMiB} MiB for VM '{spec.Name}': must be at least {MinMemoryMiB} MiB");
        }

        if (spec.MemoryMiB > hostMemoryMiB)
        {
            return FerryError.InvalidArgument(
                $"invalid memory size {spec.MemoryMiB} MiB for VM '{spec.Name}': this host has only {hostMemoryMiB} MiB");
        }

        for (var i = 0; i < spec.Disks.Count; i++)
        {
            var disk = spec.Disks[i];
            if (disk.Volume is { } volume)
            {
                if (disk.Path is not null)
                {
                    return FerryError.InvalidArgument($"disk {i} of VM '{spec.Name}': give a file or a volume, not both");
                }

                if (!volumeExists(volume))
                {
                    return FerryError.InvalidArgument($"disk {i} of VM '{spec.Name}': no volume named '{volume}' (see: ferry volume list)");
                }

                if (disk.Format != "raw")
                {
                    return FerryError.InvalidArgument($"disk {i} of VM '{spec.Name}': a volume is a raw disk (format '{disk.Format}' cannot apply)");
                }

                continue;
            }

            if (string.IsNullOrWhiteSpace(disk.Path) || !fileExists(disk.Path))
            {
                return FerryError.InvalidArgument($"disk {i} of VM '{spec.Name}': file '{disk.Path}' does not exist");
            }

            if (disk.Format is not ("raw" or "qcow2"))
            {
                return FerryError.InvalidArgument($"disk {i} of VM '{spec.Name}': unknown format '{disk.Format}' (use raw or qcow2)");
            }
        }

        if (spec.Kernel is { } kernel)
        {
            if (!fileExists(kernel.Kernel))
            {
                return FerryError.InvalidArgument($"kernel '{kernel.Kernel}' of VM '{spec.Name}' does not exist");
            }

            if (kernel.Initrd is { } initrd && !fileExists(initrd))
            {
                return FerryError.InvalidArgument($"initrd '{initrd}' of VM '{spec.Name}' does not exist");
            }
        }
        else if (spec.Disks.Count == 0)
        {
            return FerryError.InvalidArgument($"VM '{spec.Name}' has nothing to boot: give it a disk or a kernel");
        }

        return ValidateNics(spec);
    }

    private static FerryError? ValidateNics(VmSpec spec)
    {
        var hostPorts = new HashSet<(string, int)>();
        for (var i = 0; i < spec.Nics.Count; i++)
        {
            var nic = spec.Nics[i];
            if (nic.Mode == NicMode.Bridge && string.IsNullOrWhiteSpace(nic.Bridge))
            {
                return FerryError.InvalidArgument($"NIC {i} of VM '{spec.Name}': bridge mode needs a bridge name");
            }

            if (nic.Mode != NicMode.User && nic.Forwards.Count > 0)
            {
                return FerryError.InvalidArgument($"NIC {i} of VM '{spec.Name}': port forwards need user-mode networking");
            }

            if (nic.Mac is { } mac && !MacRegex().IsMatch(mac))
            {
                return FerryError.InvalidArgument($"NIC {i} of VM '{spec.Name}': invalid MAC address '{mac}'");
            }

            foreach (var forward in nic.Forwards)
            {
                if (forward.HostPort is < 1 or > 65535 || forward.GuestPort is < 1 or > 65535)
                {
                    return FerryError.InvalidArgument(
                        $"NIC {i} of VM '{spec.Name}': invalid port forward {forward.HostPort}:{forward.GuestPort} (ports are 1-65535)");
                }

                if (!hostPorts.Add((forward.HostAddress, forward.HostPort)))
                {
                    return FerryError.InvalidArgument($"VM '{spec.Name}' forwards host port {forward.HostPort} twice");
                }
            }
        }

        return null;
    }

    [GeneratedRegex("^([0-9a-f]{2}:){5}[0-9a-f]{2}$")]
    private static partial Regex MacRegex();
}
