using System.Threading.Tasks.Sources;

namespace Ferry.Storage.Nbd;

/// <summary>
/// Counts a connection's free request slots. Only the connection's reader takes slots, so at most one
/// waiter exists, and it waits on one reusable value-task source. Waking it queues the gate itself as
/// the thread-pool work item that completes the wait, so neither a wait nor a wake-up allocates
/// (SemaphoreSlim.WaitAsync allocates a task per wait; queuing a continuation allocates a work item).
/// </summary>
internal sealed class NbdSlotGate : IValueTaskSource, IThreadPoolWorkItem
{
    private readonly Lock _lock = new();

    // Continuations run on the work item's thread: SetResult is never called under the lock or on the
    // releasing thread (the reply writer), which must not be taken over by the reader.
    private ManualResetValueTaskSourceCore<bool> _waiter = new() { RunContinuationsAsynchronously = false };
    private int _free;
    private bool _waiting;
    private OperationCanceledException? _cancellation;

    public NbdSlotGate(int slots) => _free = slots;

    public bool TryTake()
    {
        lock (_lock)
        {
            if (_free == 0)
            {
                return false;
            }

            _free--;
            return true;
        }
    }

    /// <summary>Takes a slot, waiting for one if none is free; one caller at a time.</summary>
    public ValueTask TakeAsync()
    {
        lock (_lock)
        {
            if (_free > 0)
            {
                _free--;
                return ValueTask.CompletedTask;
            }

            _waiter.Reset();
            _cancellation = null;
            _waiting = true;
            return new ValueTask(this, _waiter.Version);
        }
    }

    /// <summary>Gives a slot back, straight to the waiter if there is one.</summary>
    public void Release()
    {
        lock (_lock)
        {
            if (!_waiting)
            {
                _free++;
                return;
            }

            _waiting = false;
        }

        ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
    }

    /// <summary>Ends a pending wait with <see cref="OperationCanceledException"/> (the connection is closing).</summary>
    public void Cancel(CancellationToken ct)
    {
        lock (_lock)
        {
            if (!_waiting)
            {
                return;
            }

            _waiting = false;
            _cancellation = new OperationCanceledException(ct);
        }

        ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
    }

    /// <summary>Completes the wait that <see cref="Release"/> or <see cref="Cancel"/> ended.</summary>
    void IThreadPoolWorkItem.Execute()
    {
        if (_cancellation is { } cancelled)
        {
            _waiter.SetException(cancelled);
        }
        else
        {
            _waiter.SetResult(true);
        }
    }

    void IValueTaskSource.GetResult(short token) => _waiter.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _waiter.GetStatus(token);

    void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _waiter.OnCompleted(continuation, state, token, flags);
}
