using System.Globalization;

namespace Ferry.Hypervisor;

/// <summary>
/// One running QEMU process and its QMP connection. QEMU runs daemonized, so the instance can be
/// dropped and found again (<see cref="AttachAsync"/>) by a restarted agent.
/// </summary>
public sealed class QemuInstance : IAsyncDisposable
{
    private static readonly TimeSpan LaunchTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan QmpConnectTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(50);

    private readonly QmpClient _qmp;
    private readonly TimeProvider _time;
    private readonly Task<QemuExit> _exited;
    private readonly CancellationTokenSource _detached = new();
    private int _disposed;

    private QemuInstance(int pid, QmpClient qmp, TimeProvider time, Action<QmpEvent> onEvent)
    {
        Pid = pid;
        _qmp = qmp;
        _time = time;
        _exited = WatchAsync(onEvent);
    }

    public int Pid { get; }

    /// <summary>Completes once the QEMU process has ended; cancelled when this handle is disposed while QEMU runs on.</summary>
    public Task<QemuExit> Exited => _exited;

    public static async Task<Result<QemuInstance>> LaunchAsync(
        string qemuBinary,
        VmSpec spec,
        VmRunPaths paths,
        Accelerator accelerator,
        string? volumeSocket,
        Action<QmpEvent> onEvent,
        TimeProvider time,
        CancellationToken ct,
        bool incoming = false)
    {
        if (ProcessRunner.Resolve(qemuBinary) is not { } binary)
        {
            return FerryError.Environment($"cannot start VM '{spec.Name}': QEMU binary '{qemuBinary}' not found (install qemu-system-x86 or set the agent's --qemu)");
        }

        if (paths.Check() is { } pathError)
        {
            return pathError;
        }

        Directory.CreateDirectory(paths.Directory);
        foreach (var stale in new[] { paths.QmpSocket, paths.ConsoleSocket, paths.PidFile })
        {
            File.Delete(stale);
        }

        var args = QemuCommandLine.Build(spec, paths, accelerator, volumeSocket, incoming);
        var result = await ProcessRunner.RunAsync(binary, args, LaunchTimeout, time, ct).ConfigureAwait(false);
        if (result.TimedOut || result.ExitCode != 0)
        {
            var reason = FirstLine(result.StandardError) ?? (result.TimedOut ? "QEMU did not start in time" : $"exit code {result.ExitCode}");
            return FerryError.Environment($"QEMU failed to start VM '{spec.Name}': {reason}");
        }

        // With -daemonize QEMU writes the pid file before the parent exits, so it exists now.
        if (ReadPid(paths) is not { } pid)
        {
            return FerryError.Environment($"QEMU started VM '{spec.Name}' but wrote no pid file at '{paths.PidFile}'");
        }

        try
        {
            var qmp = await ConnectQmpAsync(paths, time, ct).ConfigureAwait(false);
            return new QemuInstance(pid, qmp, time, onEvent);
        }
        catch (Exception e) when (e is QmpException or IOException or System.Net.Sockets.SocketException or OperationCanceledException)
        {
            HostProcess.Kill(pid);
            ct.ThrowIfCancellationRequested();
            return FerryError.Environment($"QEMU started VM '{spec.Name}' but its QMP socket did not answer: {e.Message}");
        }
    }

    /// <summary>Finds a QEMU that an earlier agent started for these paths; null if none is running.</summary>
    public static async Task<QemuInstance?> AttachAsync(VmRunPaths paths, Action<QmpEvent> onEvent, TimeProvider time, CancellationToken ct)
    {
        if (RunningPid(paths) is not { } pid)
        {
            return null;
        }

        try
        {
            var qmp = await ConnectQmpAsync(paths, time, ct).ConfigureAwait(false);
            return new QemuInstance(pid, qmp, time, onEvent);
        }
        catch (Exception e) when (e is QmpException or IOException or System.Net.Sockets.SocketException)
        {
            return null;
        }
    }

    /// <summary>QMP's run state: running, paused, shutdown, internal-error, ...</summary>
    public async Task<string> QueryStatusAsync(CancellationToken ct)
    {
        var status = await _qmp.ExecuteAsync("query-status", null, ct).ConfigureAwait(false);
        return status.TryGetProperty("status", out var s) ? s.GetString() ?? "unknown" : "unknown";
    }

    public Task PauseAsync(CancellationToken ct) => _qmp.ExecuteAsync("stop", null, ct);

    public Task ResumeAsync(CancellationToken ct) => _qmp.ExecuteAsync("cont", null, ct);

    /// <summary>On a VM started incoming: listens for the migration stream on <paramref name="address"/> (any port); answers the port.</summary>
    public async Task<int> ListenForMigrationAsync(string address, CancellationToken ct)
    {
        await _qmp.ExecuteAsync("migrate-incoming", new { uri = $"tcp:{address}:0" }, ct).ConfigureAwait(false);
        var status = await _qmp.ExecuteAsync("query-migrate", null, ct).ConfigureAwait(false);
        foreach (var socket in status.TryGetProperty("socket-address", out var list) ? list.EnumerateArray() : default)
        {
            if (socket.TryGetProperty("port", out var port) && int.TryParse(port.GetString(), NumberStyles.None, CultureInfo.InvariantCulture, out var value))
            {
                return value;
            }
        }

        throw new QmpException("QEMU listens for the migration but did not say on which port");
    }

    /// <summary>Sends the VM's state to <paramref name="uri"/> (tcp:HOST:PORT) within the downtime limit and bandwidth; returns at once.</summary>
    public async Task StartMigrationAsync(string uri, MigrationSettings settings, CancellationToken ct)
    {
        await _qmp.ExecuteAsync("migrate-set-parameters", new Dictionary<string, object>
        {
            ["downtime-limit"] = (long)settings.DowntimeLimit.TotalMilliseconds,
            ["max-bandwidth"] = settings.BandwidthBytesPerSecond,
        }, ct).ConfigureAwait(false);
        await _qmp.ExecuteAsync("migrate", new { uri }, ct).ConfigureAwait(false);
    }

    /// <summary>Where the outgoing migration stands (query-migrate).</summary>
    public async Task<MigrationProgress> QueryMigrationAsync(CancellationToken ct) =>
        MigrationProgress.From(await _qmp.ExecuteAsync("query-migrate", null, ct).ConfigureAwait(false));

    public Task CancelMigrationAsync(CancellationToken ct) => _qmp.ExecuteAsync("migrate_cancel", null, ct);

    /// <summary>Presses the ACPI power button; the guest decides whether and when to power off.</summary>
    public Task PowerdownAsync(CancellationToken ct) => _qmp.ExecuteAsync("system_powerdown", null, ct);

    public async Task QuitAsync(CancellationToken ct)
    {
        try
        {
            await _qmp.ExecuteAsync("quit", null, ct).ConfigureAwait(false);
        }
        catch (QmpException)
        {
            // QEMU may close the socket before answering; the exit watcher tells whether it ended.
        }
    }

    public void Kill() => HostProcess.Kill(Pid);

    /// <summary>Waits for the process to end, up to a timeout; true if it did.</summary>
    public async Task<bool> WaitForExitAsync(TimeSpan timeout, CancellationToken ct)
    {
        try
        {
            await _exited.WaitAsync(timeout, _time, ct).ConfigureAwait(false);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    private async Task<QemuExit> WatchAsync(Action<QmpEvent> onEvent)
    {
        var shutdown = false;
        var guest = false;
        var panicked = false;
        var reason = "QEMU process ended without a shutdown event";
        await foreach (var e in _qmp.Events.ReadAllAsync().ConfigureAwait(false))
        {
            switch (e.Name)
            {
                case "SHUTDOWN":
                    shutdown = true;
                    (guest, var why) = QmpEvents.Shutdown(e);
                    reason = why ?? reason;
                    break;
                case "GUEST_PANICKED":
                    panicked = true;
                    reason = "guest kernel panicked";
                    break;
            }

            onEvent(e);
        }

        // The QMP socket closes as QEMU exits; wait until the process is really gone so that its
        // disks are released before anyone acts on the exit.
        while (HostProcess.IsAlive(Pid))
        {
            await Task.Delay(PollInterval, _time, _detached.Token).ConfigureAwait(false);
        }

        return new QemuExit(shutdown, guest, panicked, reason);
    }

    private static async Task<QmpClient> ConnectQmpAsync(VmRunPaths paths, TimeProvider time, CancellationToken ct)
    {
        using var deadline = new CancellationTokenSource(QmpConnectTimeout, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, deadline.Token);
        while (true)
        {
            try
            {
                return await QmpClient.ConnectAsync(paths.QmpSocket, time, linked.Token).ConfigureAwait(false);
            }
            catch (System.Net.Sockets.SocketException) when (!linked.IsCancellationRequested)
            {
                await Task.Delay(PollInterval, time, linked.Token).ConfigureAwait(false);
            }
        }
    }

    /// <summary>The pid of the QEMU running for these paths, if one does.</summary>
    public static int? RunningPid(VmRunPaths paths) =>
        // A recycled pid must not be mistaken for our VM: the process must name our pid file.
        ReadPid(paths) is { } pid && HostProcess.IsAlive(pid) && HostProcess.CommandLine(pid) is { } cmdline && cmdline.Contains(paths.PidFile) ? pid : null;

    private static int? ReadPid(VmRunPaths paths)
    {
        try
        {
            return int.TryParse(File.ReadAllText(paths.PidFile).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) ? pid : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static string? FirstLine(string text)
    {
        foreach (var line in text.Split('\n'))
        {
            // QEMU prefixes its messages with the binary's name; warnings are not the reason it failed.
            var trimmed = line.Trim();
            if (trimmed.Length > 0 && !trimmed.Contains("warning:", StringComparison.Ordinal))
            {
                var colon = trimmed.IndexOf(": ", StringComparison.Ordinal);
                return colon > 0 && trimmed[..colon].StartsWith("qemu-system", StringComparison.Ordinal) ? trimmed[(colon + 2)..] : trimmed;
            }
        }

        return null;
    }

    /// <summary>Lets go of QEMU without stopping it (an agent shutting down leaves its VMs running).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _detached.CancelAsync().ConfigureAwait(false);
        await _qmp.DisposeAsync().ConfigureAwait(false);
        try
        {
            await _exited.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        _detached.Dispose();
    }
}
