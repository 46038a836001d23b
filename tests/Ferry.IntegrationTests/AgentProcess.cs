using System.Diagnostics;
using System.Text.Json;
using Ferry.Hypervisor;

namespace Ferry.IntegrationTests;

/// <summary>
/// A real `ferry agent` in its own data directory. Disposing it kills the agent and every QEMU it
/// started (found through the pid files in the data directory), and removes the directory, so a
/// failing test leaves nothing behind.
/// </summary>
public sealed class AgentProcess : IAsyncDisposable
{
    private readonly string[] _extraArgs;
    private readonly bool _ownsDataDirectory;
    private Process? _process;
    private string[]? _peerArgs;
    private readonly System.Text.StringBuilder _log = new();

    private AgentProcess(string dataDirectory, int port, string[] extraArgs, bool ownsDataDirectory)
    {
        DataDirectory = dataDirectory;
        Port = port;
        _extraArgs = extraArgs;
        _ownsDataDirectory = ownsDataDirectory;
    }

    public string DataDirectory { get; }

    public int Port { get; }

    public string Url => $"http://127.0.0.1:{Port}";

    public int Pid => _process?.Id ?? throw new InvalidOperationException("agent not started");

    public HttpClient Http { get; } = new() { Timeout = TimeSpan.FromSeconds(120) };

    public string Log
    {
        get
        {
            lock (_log)
            {
                return _log.ToString();
            }
        }
    }

    public static async Task<AgentProcess> StartAsync(params string[] extraArgs)
    {
        var dir = Path.Combine(Path.GetTempPath(), "ferry-it-" + Guid.NewGuid().ToString("N")[..8]);
        var agent = new AgentProcess(dir, Processes.FreeTcpPort(), extraArgs, ownsDataDirectory: true);
        await agent.LaunchAsync();
        return agent;
    }

    /// <summary>Starts the agent process again on the same data directory (after a kill).</summary>
    public async Task LaunchAsync()
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        // Every agent serves a peer API; tests give each its own port unless they choose one.
        _peerArgs ??= _extraArgs.Contains("--peer-listen") ? [] : ["--peer-listen", $"127.0.0.1:{Processes.FreeTcpPort()}"];
        foreach (var arg in (string[])[Repo.FerryDll, "agent", "--data", DataDirectory, "--listen", Url, .. _peerArgs, .. _extraArgs])
        {
            info.ArgumentList.Add(arg);
        }

        _process = Process.Start(info)!;
        _process.OutputDataReceived += (_, e) => Append(e.Data);
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        var process = _process;
        await Wait.UntilAsync(
            async () =>
            {
                if (process.HasExited)
                {
                    throw new InvalidOperationException($"agent exited with {process.ExitCode}: {Log}");
                }

                using var response = await Http.GetAsync($"{Url}/api/v1/health");
                return response.IsSuccessStatusCode;
            },
            TimeSpan.FromSeconds(60),
            "the agent to answer");
    }

    /// <summary>SIGKILL: the agent dies at once; its VMs keep running.</summary>
    public async Task KillAsync()
    {
        if (_process is { HasExited: false } process)
        {
            process.Kill();
            await process.WaitForExitAsync();
        }
    }

    /// <summary>SIGTERM, and waits for the agent to finish its clean shutdown.</summary>
    public async Task StopAsync()
    {
        if (_process is { HasExited: false } process)
        {
            await SignalAsync("-TERM");
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        }
    }

    /// <summary>SIGSTOP: the agent freezes as a hung host would, its sockets open.</summary>
    public Task PauseAsync() => SignalAsync("-STOP");

    /// <summary>SIGCONT after <see cref="PauseAsync"/>; harmless on a running agent.</summary>
    public Task ResumeAsync() => SignalAsync("-CONT");

    private async Task SignalAsync(string signal)
    {
        if (_process is { HasExited: false } process)
        {
            await Processes.RunAsync("kill", [signal, process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)], TimeSpan.FromSeconds(10));
        }
    }

    /// <summary>Runs the CLI against this agent.</summary>
    public Task<ProcessOutput> FerryAsync(params string[] args) =>
        Processes.RunAsync("dotnet", [Repo.FerryDll, "--server", Url, .. args], TimeSpan.FromMinutes(3));

    public async Task<JsonElement> FerryJsonAsync(params string[] args)
    {
        var output = await FerryAsync([.. args, "--output", "json"]);
        Assert.True(output.ExitCode == 0, $"ferry {string.Join(' ', args)} failed ({output.ExitCode}): {output.StandardError}");
        return JsonDocument.Parse(output.StandardOutput).RootElement.Clone();
    }

    public async Task<JsonElement> VmAsync(string name) => await FerryJsonAsync("vm", "show", name);

    private void Append(string? line)
    {
        if (line is not null)
        {
            lock (_log)
            {
                _log.AppendLine(line);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        _process?.Dispose();
        Http.Dispose();
        KillQemus(DataDirectory);
        KillWatchdog(DataDirectory);
        if (_ownsDataDirectory && Directory.Exists(DataDirectory))
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
    }

    /// <summary>Kills the watchdog an agent in a cluster started for the data directory (it outlives the agent, as it must).</summary>
    private static void KillWatchdog(string dataDirectory)
    {
        foreach (var entry in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(entry), out var pid) && HostProcess.CommandLine(pid) is { } args
                && args.Contains("watchdog") && args.Contains(dataDirectory))
            {
                HostProcess.Kill(pid);
            }
        }
    }

    /// <summary>Kills the QEMU of every VM under the data directory whose process still names its pid file.</summary>
    public static void KillQemus(string dataDirectory)
    {
        var vms = Path.Combine(dataDirectory, "vms");
        if (!Directory.Exists(vms))
        {
            return;
        }

        foreach (var pidFile in Directory.EnumerateFiles(vms, "qemu.pid", SearchOption.AllDirectories))
        {
            if (int.TryParse(File.ReadAllText(pidFile).Trim(), out var pid)
                && HostProcess.CommandLine(pid) is { } cmdline && cmdline.Contains(pidFile))
            {
                HostProcess.Kill(pid);
            }
        }
    }
}
