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
            // Every host is asked at once, so that their answers describe one moment: asked one after the
            // other, a host could say "running" before a migration and another after the next one.
            var asked = DateTimeOffset.UtcNow;
            var states = await Task.WhenAll(lab.Hosts.Select(async host => (host.Name, Runs: await RunsAsync(host, vm))));
            var running = states.Where(s => s.Runs).Select(s => s.Name).ToList();
            if (running.Count > 1 && DateTimeOffset.UtcNow - asked < TimeSpan.FromSeconds(1))
            {
                lock (_twice)
                {
                    _twice.Add($"{asked:HH:mm:ss.fff} on {string.Join(", ", running)}");
                }
            }

            foreach (var n in await Task.WhenAll(lab.Hosts.Select(host => LabGuest.TryCounterAsync(host, port))))
            {
                if (n is null)
                {
                    continue;
                }

                lock (_counts)
                {
                    if (_counts.Count == 0 || _counts[^1] != n)
                    {
                        var now = DateTimeOffset.UtcNow;
                        LongestStall = _counts.Count == 0 || now - lastMove < LongestStall ? LongestStall : now - lastMove;
                        lastMove = now;
                        _counts.Add(n.Value);
                    }
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

    /// <summary>Whether the host says it runs the VM (not paused); a host that does not answer says nothing.</summary>
    private static async Task<bool> RunsAsync(LabMember host, string vm)
    {
        try
        {
            var vms = await LabGuest.LocalAsync(host, "vms");
            return vms.EnumerateArray().Any(v => v.GetProperty("name").GetString() == vm && v.GetProperty("state").GetString() == "running");
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or JsonException)
        {
            return false;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _loop;
        _stop.Dispose();
    }
}
