using System.Collections.Concurrent;
using System.Threading.Tasks.Sources;
using Ferry.Storage.Replication.Wire;

namespace Ferry.Storage.Replication;

/// <summary>
/// What a write waits on until every peer its protocol waits for has answered: pooled, so the write path
/// allocates nothing. Each peer signals once, with its acknowledgement or after it was detached and
/// outdated; the worst status wins.
/// </summary>
internal sealed class AckWaiter : IValueTaskSource<AckStatus>
{
    private static readonly ConcurrentQueue<AckWaiter> Pool = new();

    private ManualResetValueTaskSourceCore<AckStatus> _core = new() { RunContinuationsAsynchronously = true };
    private int _remaining;
    private int _worst;

    public static AckWaiter Rent(int peers)
    {
        if (!Pool.TryDequeue(out var waiter))
        {
            waiter = new AckWaiter();
        }

        waiter._core.RunContinuationsAsynchronously = true;
        waiter._remaining = peers;
        waiter._worst = (int)AckStatus.Ok;
        return waiter;
    }

    public ValueTask<AckStatus> WaitAsync() => new(this, _core.Version);

    /// <summary>
    /// One peer's answer. <paramref name="inline"/>: the caller holds no lock and may run the write's
    /// continuation itself (queueing the write's reply), which saves a hand-off to the thread pool per write.
    /// </summary>
    public void Signal(AckStatus status, bool inline = false)
    {
        if (status != AckStatus.Ok)
        {
            Interlocked.CompareExchange(ref _worst, (int)status, (int)AckStatus.Ok);
        }

        if (Interlocked.Decrement(ref _remaining) == 0)
        {
            _core.RunContinuationsAsynchronously = !inline;
            _core.SetResult((AckStatus)Volatile.Read(ref _worst));
        }
    }

    public AckStatus GetResult(short token)
    {
        var result = _core.GetResult(token);
        _core.Reset();
        Pool.Enqueue(this);
        return result;
    }

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
