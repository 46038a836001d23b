namespace Ferry.Hypervisor;

/// <summary>Where a running VM keeps its sockets, pid file and serial log (one directory per VM).</summary>
public sealed record VmRunPaths(string Directory)
{
    /// <summary>Unix socket paths are limited to 107 bytes by sockaddr_un.</summary>
    public const int MaxSocketPathLength = 107;

    public string QmpSocket => Path.Combine(Directory, "qmp.sock");

    public string ConsoleSocket => Path.Combine(Directory, "console.sock");

    public string SerialLog => Path.Combine(Directory, "serial.log");

    public string PidFile => Path.Combine(Directory, "qemu.pid");

    public FerryError? Check() =>
        System.Text.Encoding.UTF8.GetByteCount(ConsoleSocket) > MaxSocketPathLength
            ? FerryError.Environment($"VM directory '{Directory}' is too long for Unix sockets: use a shorter data directory")
            : null;
}
