using Ferry.IntegrationTests.Cluster;
using Ferry.IntegrationTests.Lab;

namespace Ferry.IntegrationTests.Failover;

/// <summary>
/// Looks every 50 ms, until disposed, at which hosts of a lab run a QEMU process of a VM (stopped ones
/// do not count), and remembers every moment at which more than one did.
/// </summary>
internal sealed class InstanceWatch : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly List<string> _twice = [];
    private readonly Task _loop;

    private InstanceWatch(TestLab lab, string vm) => _loop = Task.Run(() => WatchAsync(lab, vm));

    public static InstanceWatch Start(TestLab lab, string vm) => new(lab, vm);

    /// <summary>Each sample that found the VM on more than one host, as "HH:mm:ss.fff on h1, h2".</summary>
    public IReadOnlyList<string> Twice
    {
        get
        {
            lock (_twice)
            {
                return [.. _twice];
            }
        }
    }

    private async Task WatchAsync(TestLab lab, string vm)
    {
        while (!_stop.IsCancellationRequested)
        {
            var hosts = LabGuest.Instances(lab, vm);
            if (hosts.Count > 1)
            {
                lock (_twice)
                {
                    _twice.Add($"{DateTimeOffset.UtcNow:HH:mm:ss.fff} on {string.Join(", ", hosts)}");
                }
            }

            try
            {
                await Task.Delay(50, _stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _loop;
        _stop.Dispose();
    }
}
