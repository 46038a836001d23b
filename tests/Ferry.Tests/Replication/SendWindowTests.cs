using CsCheck;
using Ferry.Storage.Replication;

namespace Ferry.Tests.Replication;

public sealed class SendWindowTests
{
    private static Task Take(SendWindow window, long size, CancellationToken ct = default) => window.TakeAsync(size, ct).AsTask();

    [Fact]
    public async Task Changes_within_the_window_go_at_once_and_the_next_waits_for_room()
    {
        var window = new SendWindow(frames: 2, bytes: 100);
        Assert.True(Take(window, 60, default).IsCompletedSuccessfully);
        Assert.True(Take(window, 40, default).IsCompletedSuccessfully);

        var third = Take(window, 0, default); // no frame left, though it has no data
        Assert.False(third.IsCompleted);
        window.Return(60);
        await third.WaitAsync(TimeSpan.FromSeconds(5));

        var large = Take(window, 61, default); // a frame is free, but only 60 bytes
        Assert.False(large.IsCompleted);
        window.Return(40);
        await large.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task A_change_larger_than_the_window_goes_alone()
    {
        var window = new SendWindow(frames: 8, bytes: 100);
        Assert.True(Take(window, 1, default).IsCompletedSuccessfully);
        var huge = Take(window, 1000, default);
        Assert.False(huge.IsCompleted);
        window.Return(1);
        await huge.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.False(Take(window, 1, default).IsCompleted);
    }

    [Fact]
    public async Task Waiters_are_served_in_order_so_a_large_change_is_not_starved_by_small_ones()
    {
        var window = new SendWindow(frames: 8, bytes: 100);
        Assert.True(Take(window, 80, default).IsCompletedSuccessfully);
        var large = Take(window, 50, default);
        var small = Take(window, 10, default); // fits, but comes after the large one
        Assert.False(small.IsCompleted);

        window.Return(80);
        await large.WaitAsync(TimeSpan.FromSeconds(5));
        await small.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task A_cancelled_waiter_leaves_the_queue_and_those_behind_it_go()
    {
        var window = new SendWindow(frames: 8, bytes: 100);
        Assert.True(Take(window, 90, default).IsCompletedSuccessfully);
        using var cancel = new CancellationTokenSource();
        var large = Take(window, 50, cancel.Token);
        var small = Take(window, 10, default);
        Assert.False(small.IsCompleted);

        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => large);
        await small.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public void Whatever_the_order_of_takes_and_returns_the_window_is_never_overrun()
    {
        // Steps: a take of some bytes, or the return of the oldest change granted.
        Gen.Select(Gen.Bool, Gen.Long[0, 150]).Array[1, 60].Sample(steps =>
        {
            const int Frames = 3;
            const long Bytes = 100;
            var window = new SendWindow(Frames, Bytes);
            var waiting = new List<(long Size, Task Take)>();
            var granted = new Queue<long>();
            foreach (var (take, size) in steps)
            {
                if (take)
                {
                    waiting.Add((size, Take(window, size, default)));
                }
                else if (granted.Count > 0)
                {
                    window.Return(granted.Dequeue());
                }

                // A grant completes its task before Take or Return returns, in the order asked.
                while (waiting.Count > 0 && waiting[0].Take.IsCompleted)
                {
                    granted.Enqueue(waiting[0].Size);
                    waiting.RemoveAt(0);
                }

                if (waiting.Any(w => w.Take.IsCompleted))
                {
                    return false; // granted out of order
                }

                var held = granted.Sum();
                // Over the bytes only with one change's data in flight, one larger than the window.
                if (granted.Count > Frames || (held > Bytes && granted.Count(size => size > 0) > 1))
                {
                    return false;
                }
            }

            return true;
        }, iter: 200);
    }
}
