using System.Diagnostics;
using System.Reflection;
using Microsoft.Extensions.Logging;

namespace Ferry.Agent.Watchdog;

/// <summary>
/// Starts the host's watchdog when none runs: `ferry watchdog` in a session of its own, so that it
/// outlives the agent (that is its purpose), logging to DATA/watchdog.log.
/// </summary>
internal sealed partial class WatchdogLauncher(AgentOptions options, ILoggerFactory loggers)
{
    private readonly ILogger _log = loggers.CreateLogger("Ferry.Watchdog");

    public async Task EnsureRunningAsync(CancellationToken ct)
    {
        if (Command() is not { } command)
        {
            return;
        }

        using (var free = HostWatchdog.TryLock(options.DataDirectory))
        {
            if (free is null)
            {
                return; // held: a watchdog runs
            }
        }

        var start = new ProcessStartInfo("sh") { UseShellExecute = false };
        foreach (var arg in (string[])["-c", "exec setsid -f \"$@\" >>\"$0\" 2>&1 </dev/null", Path.Combine(options.DataDirectory, "watchdog.log"), .. command])
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start);
        if (process is not null)
        {
            await process.WaitForExitAsync(ct).ConfigureAwait(false);
        }

        LogStarted(_log, options.HostName);
    }

    /// <summary>This program's `watchdog` command line; null when the agent does not run as `ferry` (in a test host).</summary>
    private string[]? Command()
    {
        if (Assembly.GetEntryAssembly()?.GetName().Name != "ferry" || Environment.ProcessPath is not { } executable)
        {
            return null;
        }

        string[] watchdog = ["watchdog", "--data", options.DataDirectory, "--device", options.WatchdogDevice ?? "none"];
        return Path.GetFileNameWithoutExtension(executable) == "dotnet"
            ? [executable, Environment.GetCommandLineArgs()[0], .. watchdog]
            : [executable, .. watchdog];
    }

    [LoggerMessage(1303, LogLevel.Information, "host {HostId}: watchdog started")]
    private static partial void LogStarted(ILogger logger, string hostId);
}
