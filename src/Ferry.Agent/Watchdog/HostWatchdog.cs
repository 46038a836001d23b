using System.Text.Json;
using Ferry.Agent.Cluster;
using Ferry.Hypervisor;
using Microsoft.Extensions.Logging;

namespace Ferry.Agent.Watchdog;

/// <summary>
/// `ferry watchdog`: the last line of a host's self-fencing (DESIGN §1, invariant 5). A process of its
/// own beside the agent, fed through the agent's lease record: once the record's deadline passes with
/// no newer renewal (the agent died, hung, or lost its lease), it kills the cluster's QEMU processes on
/// this host, again on every look while the deadline stays past, so that the cluster may run them
/// elsewhere. With a watchdog device it also stops feeding that device then, and the machine resets.
/// </summary>
public sealed partial class HostWatchdog(string dataDirectory, string? device, TimeProvider time, ILogger logger)
{
    public const string LockFile = "watchdog.lock";

    /// <summary>How often it looks; also how late after the deadline it may kill.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(100);

    private static readonly byte[] Keepalive = [0];
    private static readonly byte[] MagicClose = "V"u8.ToArray();

    public async Task<FerryError?> RunAsync(CancellationToken ct)
    {
        if (TryLock(dataDirectory) is not { } held)
        {
            return FerryError.Conflict($"a watchdog already runs for {dataDirectory}");
        }

        using var hold = held;
        await using var hardware = device is null ? null : new FileStream(device, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, 1);
        LogStarted(logger, dataDirectory, device ?? "none");
        var expired = false;
        var killed = new HashSet<int>();
        using var timer = new PeriodicTimer(Interval, time);
        try
        {
            do
            {
                var record = await LeaseRecord.ReadAsync(Path.Combine(dataDirectory, LeaseRecord.FileName), ct).ConfigureAwait(false);
                var now = time.GetElapsedTime(0);
                if (record is not null && now >= record.FenceBy)
                {
                    if (!expired)
                    {
                        LogExpired(logger, (now - record.FenceBy).TotalMilliseconds);
                        expired = true;
                    }

                    KillClusterVms(killed);
                    continue;
                }

                expired = false;
                killed.Clear();
                if (hardware is not null)
                {
                    await hardware.WriteAsync(Keepalive, ct).ConfigureAwait(false);
                    await hardware.FlushAsync(ct).ConfigureAwait(false);
                }
            }
            while (await timer.WaitForNextTickAsync(ct).ConfigureAwait(false));
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Stopped on purpose: a device is disarmed with its magic close, unless the lease ran out.
            if (hardware is not null && !expired)
            {
                await hardware.WriteAsync(MagicClose, CancellationToken.None).ConfigureAwait(false);
            }
        }

        return null;
    }

    /// <summary>Holds the lock file exclusively; null when another process holds it (a watchdog already runs).</summary>
    public static FileStream? TryLock(string dataDirectory)
    {
        try
        {
            return new FileStream(Path.Combine(dataDirectory, LockFile), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>SIGKILL to every QEMU of a VM the cluster made here (not the host's own VMs outside the cluster).</summary>
    private void KillClusterVms(HashSet<int> killed)
    {
        var vms = Path.Combine(dataDirectory, "vms");
        if (!Directory.Exists(vms))
        {
            return;
        }

        foreach (var directory in Directory.EnumerateDirectories(vms))
        {
            if (!IsManaged(directory) || QemuInstance.RunningPid(new VmRunPaths(directory)) is not { } pid)
            {
                continue;
            }

            HostProcess.Kill(pid);
            if (killed.Add(pid))
            {
                LogKilled(logger, Path.GetFileName(directory), pid);
            }
        }
    }

    private static bool IsManaged(string vmDirectory)
    {
        try
        {
            return JsonSerializer.Deserialize<Vms.VmRecord>(File.ReadAllBytes(Path.Combine(vmDirectory, Vms.FileVmRegistry.RecordFile)), FerryJson.Options) is { Managed: true };
        }
        catch (Exception e) when (e is IOException or JsonException)
        {
            return false;
        }
    }

    [LoggerMessage(1300, LogLevel.Information, "watchdog for {DataDirectory} started (device {Device})")]
    private static partial void LogStarted(ILogger logger, string dataDirectory, string device);

    [LoggerMessage(1301, LogLevel.Warning, "watchdog: the lease ran out {LateMs:0} ms ago and no renewal followed: killing the cluster's VMs")]
    private static partial void LogExpired(ILogger logger, double lateMs);

    [LoggerMessage(1302, LogLevel.Warning, "watchdog: killed VM {VmId} (QEMU pid {Pid})")]
    private static partial void LogKilled(ILogger logger, string vmId, int pid);
}

/// <summary>The `ferry watchdog` process: one <see cref="HostWatchdog"/>, logging as the agent does.</summary>
public static class WatchdogHost
{
    public static async Task<FerryError?> RunAsync(string dataDirectory, string? device, CancellationToken ct)
    {
        using var loggers = LoggerFactory.Create(logging => logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
            o.UseUtcTimestamp = true;
        }));
        return await new HostWatchdog(dataDirectory, device, TimeProvider.System, loggers.CreateLogger("Ferry.Watchdog")).RunAsync(ct).ConfigureAwait(false);
    }
}
