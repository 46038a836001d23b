using Ferry.Hypervisor;

namespace Ferry.Tests.Hypervisor;

public class QemuCommandLineTests
{
    private static readonly VmRunPaths Paths = new("/var/lib/ferry/vms/web-1");

    private static VmSpec Spec => new()
    {
        Name = "web-1",
        VCpus = 2,
        MemoryMiB = 512,
        Disks = [new DiskSpec("/images/a,b.raw"), new DiskSpec("/images/data.qcow2", "qcow2", ReadOnly: true)],
        Nics = [new NicSpec { Forwards = [new PortForward(8080, 80), new PortForward(2222, 22, "0.0.0.0")] }],
    };

    private static string ValueAfter(IReadOnlyList<string> args, string option, int occurrence = 0)
    {
        var seen = 0;
        for (var i = 0; i < args.Count - 1; i++)
        {
            if (args[i] == option && seen++ == occurrence)
            {
                return args[i + 1];
            }
        }

        throw new InvalidOperationException($"{option} #{occurrence} not found in: {string.Join(' ', args)}");
    }

    [Fact]
    public void Sizes_and_accelerator_come_from_the_spec()
    {
        var args = QemuCommandLine.Build(Spec, Paths, Accelerator.Tcg);
        Assert.Equal("2", ValueAfter(args, "-smp"));
        Assert.Equal("512M", ValueAfter(args, "-m"));
        Assert.Equal("q35,accel=tcg", ValueAfter(args, "-machine"));
        Assert.Equal("max", ValueAfter(args, "-cpu"));
        Assert.Equal("q35,accel=kvm", ValueAfter(QemuCommandLine.Build(Spec, Paths, Accelerator.Kvm), "-machine"));
        Assert.Equal("host", ValueAfter(QemuCommandLine.Build(Spec, Paths, Accelerator.Kvm), "-cpu"));
    }

    [Fact]
    public void Qemu_is_daemonized_with_qmp_pid_file_and_a_logged_serial_console()
    {
        var args = QemuCommandLine.Build(Spec, Paths, Accelerator.Tcg);
        Assert.Contains("-daemonize", args);
        Assert.Equal(Paths.PidFile, ValueAfter(args, "-pidfile"));
        Assert.Equal($"unix:{Paths.QmpSocket},server=on,wait=off", ValueAfter(args, "-qmp"));
        Assert.Contains($"logfile={Paths.SerialLog}", ValueAfter(args, "-chardev"), StringComparison.Ordinal);
        Assert.Equal("chardev:serial0", ValueAfter(args, "-serial"));
        Assert.Contains("-nodefaults", args);
    }

    [Fact]
    public void Disks_are_blockdevs_with_commas_escaped_and_the_first_one_boots()
    {
        var args = QemuCommandLine.Build(Spec, Paths, Accelerator.Tcg);
        Assert.Contains("filename=/images/a,,b.raw", ValueAfter(args, "-blockdev", 0), StringComparison.Ordinal);
        Assert.Equal("driver=raw,node-name=disk0,file=disk0-file,read-only=off", ValueAfter(args, "-blockdev", 1));
        Assert.Equal("driver=qcow2,node-name=disk1,file=disk1-file,read-only=on", ValueAfter(args, "-blockdev", 3));
        Assert.Equal("virtio-blk-pci,drive=disk0,id=disk0-dev,bootindex=0", ValueAfter(args, "-device", 0));
        Assert.Equal("virtio-blk-pci,drive=disk1,id=disk1-dev", ValueAfter(args, "-device", 1));
    }

    [Fact]
    public void Volume_disks_attach_over_the_agents_nbd_socket_and_reconnect()
    {
        var args = QemuCommandLine.Build(Spec with { Disks = [DiskSpec.ForVolume("vol1")] }, Paths, Accelerator.Tcg, "/var/lib/ferry/nbd.sock");
        Assert.Equal(
            $"driver=nbd,node-name=disk0-file,server.type=unix,server.path=/var/lib/ferry/nbd.sock,export=vol1,reconnect-delay={QemuCommandLine.NbdReconnectDelaySeconds},read-only=off",
            ValueAfter(args, "-blockdev", 0));
        Assert.Equal("driver=raw,node-name=disk0,file=disk0-file,read-only=off", ValueAfter(args, "-blockdev", 1));
    }

    [Fact]
    public void Kernel_boot_replaces_the_disk_boot_index()
    {
        var args = QemuCommandLine.Build(Spec with { Kernel = new KernelBoot("/k", "/i", "console=ttyS0 quiet") }, Paths, Accelerator.Tcg);
        Assert.Equal("/k", ValueAfter(args, "-kernel"));
        Assert.Equal("/i", ValueAfter(args, "-initrd"));
        Assert.Equal("console=ttyS0 quiet", ValueAfter(args, "-append"));
        Assert.DoesNotContain(args, a => a.Contains("bootindex", StringComparison.Ordinal));
    }

    [Fact]
    public void User_networking_forwards_host_ports_and_bridges_use_the_helper()
    {
        var args = QemuCommandLine.Build(Spec, Paths, Accelerator.Tcg);
        Assert.Equal("user,id=net0,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=tcp:0.0.0.0:2222-:22", ValueAfter(args, "-netdev"));
        Assert.Equal("virtio-net-pci,netdev=net0,id=net0-dev", ValueAfter(args, "-device", 2));

        var bridged = QemuCommandLine.Build(Spec with { Nics = [new NicSpec { Mode = NicMode.Bridge, Bridge = "br0", Mac = "52:54:00:00:00:01" }] }, Paths, Accelerator.Tcg);
        Assert.Equal("bridge,id=net0,br=br0", ValueAfter(bridged, "-netdev"));
        Assert.Equal("virtio-net-pci,netdev=net0,id=net0-dev,mac=52:54:00:00:00:01", ValueAfter(bridged, "-device", 2));
    }

    [Fact]
    public void Socket_paths_beyond_the_unix_limit_are_refused() =>
        Assert.Equal(ErrorCode.Environment, new VmRunPaths("/" + new string('x', 100)).Check()?.Code);
}
