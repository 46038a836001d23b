using System.Text.Json;
using Ferry.IntegrationTests.Cluster;
using Ferry.IntegrationTests.Lab;

namespace Ferry.IntegrationTests.Migration;

/// <summary>
/// Watches a guest through a migration, every 50 ms until disposed: each host's own account of the VM
/// (remembering every moment more than one said it runs, not paused) and the counter the guest answers
/// on whichever host it answers (remembering every value seen, in order).
/// </summary>
internal sealed class GuestWatch : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly List<string> _twice = [];
    private readonly List<long> _counts = [];
    private readonly Task _loop;

    private GuestWatch(TestLab lab, string vm, int port) => _loop = Task.Run(() => WatchAsync(lab, vm, port));

    public static GuestWatch Start(TestLab lab, string vm, int port = 8080) => new(lab, vm, port);

    /// <summary>Each sample in which more than one host said the VM runs.</summary>
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

    /// <summary>The counter values read, in the order read.</summary>
    public IReadOnlyList<long> Counts
    {
        get
        {
            lock (_counts)
            {
                return [.. _counts];
            }
        }
    }

    /// <summary>The counter only went up, as read on whichever host answered, and no two hosts ever said they run the VM.</summary>
    public void AssertOnlyUpAndNeverTwice(string vm = "the guest")
    {
        var counts = Counts;
        Assert.True(counts.Zip(counts.Skip(1)).All(p => p.Second > p.First), $"{vm}'s counter went back: {string.Join(", ", counts)}");
        Assert.Empty(Twice);
    }

    /// <summary>The longest time between two reads that saw the counter move on: the pause the guest showed.</summary>
    public TimeSpan LongestStall { get; private set; }

    private async Task WatchAsync(TestLab lab, string vm, int port)
    {
        var lastMove = DateTimeOffset.UtcNow;
        while (!_stop.IsCancellationRequested)
        {
            var running = new List<string>();
            foreach (var host in lab.Hosts)
            {
                try
                {
                    var vms = await LabGuest.LocalAsync(host, "vms");
                    if (vms.EnumerateArray().Any(v => v.GetProperty("name").GetString() == vm && v.GetProperty("state").GetString() == "running"))
                    {
                        running.Add(host.Name);
                    }

                    if (await LabGuest.TryCounterAsync(host, port) is { } n)
                    {
                        lock (_counts)
                        {
                            if (_counts.Count == 0 || _counts[^1] != n)
                            {
                                var now = DateTimeOffset.UtcNow;
                                LongestStall = _counts.Count == 0 || now - lastMove < LongestStall ? LongestStall : now - lastMove;
                                lastMove = now;
                                _counts.Add(n);
                            }
                        }
                    }
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException or JsonException)
                {
                    // A host that does not answer now says nothing about the VM.
                }
            }

            if (running.Count > 1)
            {
                lock (_twice)
                {
                    _twice.Add($"{DateTimeOffset.UtcNow:HH:mm:ss.fff} on {string.Join(", ", running)}");
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
