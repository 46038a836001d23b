namespace Ferry.Storage.Replication;

/// <summary>
/// How much a primary may have sent to one peer that the peer has not acknowledged: at most a number of
/// changes and of bytes of their data. Protocol A acknowledges
/// writes before the peer has them, so without a bound in bytes a fast writer of large blocks would
/// queue gigabytes in memory for a slow link; with it, writes wait (first come, first served) once the
/// link is that far behind. A change with more data than the whole window goes when no other data is in flight.
/// </summary>
internal sealed class SendWindow(int frames, long bytes)
{
    private readonly Lock _lock = new();
    private readonly LinkedList<Waiter> _waiters = new();
    private readonly long _bytes = bytes;
    private int _freeFrames = frames;
    private long _freeBytes = bytes;

    /// <summary>Takes room for one change of <paramref name="size"/> data bytes, waiting until there is.</summary>
    public ValueTask TakeAsync(long size, CancellationToken ct)
    {
        Waiter waiter;
        lock (_lock)
        {
            if (_waiters.Count == 0 && Fits(size))
            {
                Take(size);
                return ValueTask.CompletedTask;
            }

            waiter = new Waiter(size);
            waiter.Node = _waiters.AddLast(waiter);
        }

        waiter.Cancellation = ct.Register(() => Cancel(waiter, ct));
        return new ValueTask(waiter.Granted.Task);
    }

    /// <summary>Gives back what a change took (acknowledged, or not sent after all).</summary>
    public void Return(long size)
    {
        lock (_lock)
        {
            _freeFrames++;
            _freeBytes += size;
            GrantWaiting();
        }
    }

    private bool Fits(long size) => _freeFrames > 0 && (size <= _freeBytes || _freeBytes == _bytes);

    private void Take(long size)
    {
        _freeFrames--;
        _freeBytes -= size;
    }

    private void GrantWaiting()
    {
        while (_waiters.First is { } first && Fits(first.Value.Size))
        {
            _waiters.RemoveFirst();
            first.Value.Node = null;
            Take(first.Value.Size);
            first.Value.Cancellation.Unregister(); // not Dispose: that waits for a running Cancel, which waits for this lock
            first.Value.Granted.TrySetResult();
        }
    }

    private void Cancel(Waiter waiter, CancellationToken ct)
    {
        lock (_lock)
        {
            if (waiter.Node is not { } node)
            {
                return; // granted already
            }

            _waiters.Remove(node);
            waiter.Node = null;
            GrantWaiting(); // those behind it may fit now
        }

        waiter.Granted.TrySetCanceled(ct);
    }

    private sealed class Waiter(long size)
    {
        public long Size => size;

        public TaskCompletionSource Granted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public LinkedListNode<Waiter>? Node { get; set; }

        public CancellationTokenRegistration Cancellation { get; set; }
    }
}
