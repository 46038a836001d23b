using Microsoft.Extensions.Logging;

namespace Ferry.Agent.Cluster;

/// <summary>
/// Asks each started VM's health check (an http URL) until it first answers 2xx, then tells the caller
/// how long that took; one probe per VM, replaced when the VM starts again, ended when the host stops.
/// </summary>
internal sealed partial class HealthProbes(TimeProvider time, ILoggerFactory loggers) : IAsyncDisposable
{
    private static readonly TimeSpan Every = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan GiveUpAfter = TimeSpan.FromMinutes(10);

    private readonly ILogger _log = loggers.CreateLogger("Ferry.Health");
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(1) };
    private readonly CancellationTokenSource _stopping = new();
    private readonly Lock _lock = new();
    private readonly Dictionary<string, (CancellationTokenSource Stop, Task Probe)> _probes = new(StringComparer.Ordinal);
    private readonly List<(CancellationTokenSource Stop, Task Probe)> _replaced = [];

    /// <summary>Starts probing <paramref name="url"/> for <paramref name="vm"/>; <paramref name="healthy"/> gets the time from now to the first 2xx.</summary>
    public void Start(string vm, string url, Func<TimeSpan, Task> healthy)
    {
        lock (_lock)
        {
            if (_probes.Remove(vm, out var earlier))
            {
                earlier.Stop.Cancel();
                _replaced.Add(earlier);
            }

            var stop = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            _probes[vm] = (stop, ProbeAsync(vm, new Uri(url), healthy, stop.Token));
        }
    }

    private async Task ProbeAsync(string vm, Uri url, Func<TimeSpan, Task> healthy, CancellationToken ct)
    {
        var started = time.GetTimestamp();
        try
        {
            while (time.GetElapsedTime(started) < GiveUpAfter)
            {
                try
                {
                    using var response = await _http.GetAsync(url, ct).ConfigureAwait(false);
                    if (response.IsSuccessStatusCode)
                    {
                        await healthy(time.GetElapsedTime(started)).ConfigureAwait(false);
                        return;
                    }
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
                {
                    // Not answering yet.
                }

                await Task.Delay(Every, time, ct).ConfigureAwait(false);
            }

            LogGaveUp(_log, vm, url.ToString(), GiveUpAfter.TotalMinutes);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Started again, or the host stops.
        }
        catch (Exception e)
        {
            LogFailed(_log, vm, e.Message);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        (CancellationTokenSource Stop, Task Probe)[] probes;
        lock (_lock)
        {
            probes = [.. _probes.Values, .. _replaced];
        }

        await Task.WhenAll(probes.Select(p => p.Probe)).ConfigureAwait(false);
        foreach (var (stop, _) in probes)
        {
            stop.Dispose();
        }

        _stopping.Dispose();
        _http.Dispose();
    }

    [LoggerMessage(1230, LogLevel.Warning, "VM {VmId}: no health answer from {Url} within {Minutes} minutes")]
    private static partial void LogGaveUp(ILogger logger, string vmId, string url, double minutes);

    [LoggerMessage(1231, LogLevel.Warning, "VM {VmId}: health probe failed: {Reason}")]
    private static partial void LogFailed(ILogger logger, string vmId, string reason);
}
