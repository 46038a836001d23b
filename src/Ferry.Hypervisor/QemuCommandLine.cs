using System.Globalization;
using System.Text;

namespace Ferry.Hypervisor;

/// <summary>Builds QEMU's arguments from a VM spec. Pure, so every option can be checked in unit tests.</summary>
public static class QemuCommandLine
{
    /// <param name="volumeSocket">The local agent's NBD socket, for disks that are Ferry volumes.</param>
    /// <param name="incoming">Start paused, waiting for a live migration's state (QMP migrate-incoming says where).</param>
    public static IReadOnlyList<string> Build(VmSpec spec, VmRunPaths paths, Accelerator accelerator, string? volumeSocket = null, bool incoming = false)
    {
        var args = new List<string>
        {
            "-name", $"guest={spec.Name},debug-threads=on",
            "-machine", accelerator == Accelerator.Kvm ? "q35,accel=kvm" : "q35,accel=tcg",
            "-cpu", CpuModel(accelerator),
            "-smp", spec.VCpus.ToString(CultureInfo.InvariantCulture),
            "-m", spec.MemoryMiB.ToString(CultureInfo.InvariantCulture) + "M",
            "-nodefaults", "-no-user-config", "-display", "none",

            // Daemonized so that the VM outlives an agent restart; the pid file is how the agent finds it again.
            "-daemonize", "-pidfile", paths.PidFile,
            "-qmp", $"unix:{Escape(paths.QmpSocket)},server=on,wait=off",

            // The serial console is a socket (for an interactive console) that also logs everything to a file.
            "-chardev", $"socket,id=serial0,path={Escape(paths.ConsoleSocket)},server=on,wait=off,logfile={Escape(paths.SerialLog)},logappend=on",
            "-serial", "chardev:serial0",
        };

        if (spec.Kernel is { } kernel)
        {
            args.Add("-kernel");
            args.Add(kernel.Kernel);
            if (kernel.Initrd is { } initrd)
            {
                args.Add("-initrd");
                args.Add(initrd);
            }

            if (kernel.Append is { } append)
            {
                args.Add("-append");
                args.Add(append);
            }
        }

        for (var i = 0; i < spec.Disks.Count; i++)
        {
            AddDisk(args, i, spec.Disks[i], volumeSocket, bootIndex: spec.Kernel is null && i == 0);
        }

        for (var i = 0; i < spec.Nics.Count; i++)
        {
            AddNic(args, i, spec.Nics[i]);
        }

        if (incoming)
        {
            // Paused even once the state is in: the source's host says when this one may run.
            args.AddRange(["-S", "-incoming", "defer"]);
        }

        return args;
    }

    /// <summary>The CPU model a VM gets; the KVM probe boots with the same one, since that is what must work.</summary>
    public static string CpuModel(Accelerator accelerator) => accelerator == Accelerator.Kvm ? "host" : "max";

    /// <summary>How long QEMU keeps retrying a lost NBD connection before failing guest I/O; covers an agent restart.</summary>
    public const int NbdReconnectDelaySeconds = 30;

    private static void AddDisk(List<string> args, int index, DiskSpec disk, string? volumeSocket, bool bootIndex)
    {
        var file = $"disk{index}-file";
        var node = $"disk{index}";
        var readOnly = disk.ReadOnly ? "on" : "off";
        args.Add("-blockdev");
        args.Add(disk.Volume is { } volume
            ? $"driver=nbd,node-name={file},server.type=unix,server.path={Escape(volumeSocket ?? throw new ArgumentException("a volume disk needs the agent's NBD socket", nameof(volumeSocket)))},export={volume},reconnect-delay={NbdReconnectDelaySeconds},read-only={readOnly}"
            : $"driver=file,node-name={file},filename={Escape(disk.Path!)},read-only={readOnly},cache.direct=off,cache.no-flush=off");
        args.Add("-blockdev");
        args.Add($"driver={disk.Format},node-name={node},file={file},read-only={readOnly}");
        args.Add("-device");
        args.Add($"virtio-blk-pci,drive={node},id={node}-dev" + (bootIndex ? ",bootindex=0" : string.Empty));
    }

    private static void AddNic(List<string> args, int index, NicSpec nic)
    {
        var id = $"net{index}";
        var netdev = new StringBuilder();
        if (nic.Mode == NicMode.User)
        {
            netdev.Append(CultureInfo.InvariantCulture, $"user,id={id}");
            foreach (var forward in nic.Forwards)
            {
                netdev.Append(CultureInfo.InvariantCulture, $",hostfwd=tcp:{forward.HostAddress}:{forward.HostPort}-:{forward.GuestPort}");
            }
        }
        else
        {
            netdev.Append(CultureInfo.InvariantCulture, $"bridge,id={id},br={Escape(nic.Bridge!)}");
        }

        args.Add("-netdev");
        args.Add(netdev.ToString());
        args.Add("-device");
        args.Add($"virtio-net-pci,netdev={id},id={id}-dev" + (nic.Mac is { } mac ? $",mac={mac}" : string.Empty));
    }

    /// <summary>QEMU option values are comma separated; a literal comma is written twice.</summary>
    private static string Escape(string value) => value.Replace(",", ",,", StringComparison.Ordinal);
}
