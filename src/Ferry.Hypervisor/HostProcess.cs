using System.Diagnostics;

namespace Ferry.Hypervisor;

/// <summary>
/// Looks at processes by pid through /proc. QEMU is daemonized, so it is not our child and cannot be
/// waited for: liveness is read from /proc/PID/stat (a zombie counts as dead).
/// </summary>
public static class HostProcess
{
    public static bool IsAlive(int pid) => State(pid) is { } state && state is not ('Z' or 'X');

    /// <summary>Stopped by a signal (SIGSTOP) or a tracer.</summary>
    public static bool IsStopped(int pid) => State(pid) is 'T' or 't';

    /// <summary>The state letter in /proc/PID/stat (R, S, D, T, Z, ...), or null when the process is gone.</summary>
    private static char? State(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");

            // The state letter follows the command name, which is in parentheses and may contain spaces.
            var close = stat.LastIndexOf(')');
            return close > 0 && close + 2 < stat.Length ? stat[close + 2] : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>The process's arguments, or null when it is gone.</summary>
    public static IReadOnlyList<string>? CommandLine(int pid)
    {
        try
        {
            var raw = File.ReadAllText($"/proc/{pid}/cmdline");
            return raw.Split('\0', StringSplitOptions.RemoveEmptyEntries);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    public static void Kill(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            process.Kill();
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            // Already gone.
        }
    }

    public static long TotalMemoryMiB()
    {
        foreach (var line in File.ReadLines("/proc/meminfo"))
        {
            if (line.StartsWith("MemTotal:", StringComparison.Ordinal))
            {
                var kib = long.Parse(line["MemTotal:".Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
                return kib / 1024;
            }
        }

        return long.MaxValue;
    }
}
