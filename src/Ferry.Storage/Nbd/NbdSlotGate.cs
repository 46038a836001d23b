using System.Threading.Tasks.Sources;

namespace Ferry.Storage.Nbd;

/// <summary>
/// Counts a connection's free request slots. Only the connection's reader takes slots, so at most one
/// waiter exists, and it waits on one reusable value-task source: unlike SemaphoreSlim.WaitAsync, a
/// wait allocates nothing, which keeps a saturated connection's hot path allocation-free.
/// </summary>
internal sealed class NbdSlotGate : IValueTaskSource
{
    private readonly Lock _lock = new();
    private ManualResetValueTaskSourceCore<bool> _waiter = new() { RunContinuationsAsynchronously = true };
    private int _free;
    private bool _waiting;

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
            _waiting = true;
            return new ValueTask(this, _waiter.Version);
        }
    }

    /// <summary>Gives a slot back, straight to the waiter if there is one.</summary>
    public void Release()
    {
        lock (_lock)
        {
            if (_waiting)
            {
                _waiting = false;
                _waiter.SetResult(true);
                return;
            }

            _free++;
        }
    }

    /// <summary>Ends a pending wait with <see cref="OperationCanceledException"/> (the connection is closing).</summary>
    public void Cancel(CancellationToken ct)
    {
        lock (_lock)
        {
            if (_waiting)
            {
                _waiting = false;
                _waiter.SetException(new OperationCanceledException(ct));
            }
        }
    }

    void IValueTaskSource.GetResult(short token) => _waiter.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _waiter.GetStatus(token);

    void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _waiter.OnCompleted(continuation, state, token, flags);
}
