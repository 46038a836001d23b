namespace Ferry.Hypervisor;

/// <summary>
/// Decides between KVM and TCG. /dev/kvm existing is not enough (nested virtualization often exposes
/// a device that cannot run guests), so KVM is chosen only if a tiny probe VM boots under it: a boot
/// sector that writes to QEMU's isa-debug-exit port, which makes QEMU exit with a known code.
/// </summary>
public static class AcceleratorProbe
{
    /// <summary>isa-debug-exit makes QEMU exit with (value &lt;&lt; 1) | 1; the boot sector writes 1.</summary>
    private const int ProbeExitCode = 3;

    public static async Task<Accelerator> ChooseAsync(
        AcceleratorChoice choice, string qemuBinary, TimeProvider time, CancellationToken ct)
    {
        if (choice == AcceleratorChoice.Tcg)
        {
            return Accelerator.Tcg;
        }

        if (choice == AcceleratorChoice.Kvm)
        {
            return Accelerator.Kvm;
        }

        return File.Exists("/dev/kvm") && await KvmBootsAsync(qemuBinary, time, ct).ConfigureAwait(false)
            ? Accelerator.Kvm
            : Accelerator.Tcg;
    }

    public static async Task<bool> KvmBootsAsync(string qemuBinary, TimeProvider time, CancellationToken ct)
    {
        var image = Path.Combine(Path.GetTempPath(), $"ferry-kvm-probe-{Environment.ProcessId}.img");
        await File.WriteAllBytesAsync(image, BootSector(), ct).ConfigureAwait(false);
        try
        {
            string[] args =
            [
                // The i440fx machine's BIOS reaches the boot sector in milliseconds; q35's did not in our tests.
                // The CPU model must be the one real VMs get: some hosts run KVM only with an older model.
                "-machine", "pc,accel=kvm", "-cpu", QemuCommandLine.CpuModel(Accelerator.Kvm),
                "-nodefaults", "-no-user-config", "-display", "none",
                "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
                "-drive", $"file={image},format=raw,if=ide",
            ];
            var result = await ProcessRunner.RunAsync(qemuBinary, args, TimeSpan.FromSeconds(15), time, ct).ConfigureAwait(false);
            return !result.TimedOut && result.ExitCode == ProbeExitCode;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
        finally
        {
            File.Delete(image);
        }
    }

    private static byte[] BootSector()
    {
        var sector = new byte[512];

        // mov al, 1; out 0xf4, al; hlt; jmp $
        byte[] code = [0xB0, 0x01, 0xE6, 0xF4, 0xF4, 0xEB, 0xFE];
        code.CopyTo(sector, 0);
        sector[510] = 0x55;
        sector[511] = 0xAA;
        return sector;
    }
}
