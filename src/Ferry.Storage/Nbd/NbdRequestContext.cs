namespace Ferry.Storage.Nbd;

/// <summary>
/// One request on its way through the thread pool, reused by its connection so that dispatch allocates nothing:
/// a thread-pool work item that runs <see cref="NbdConnection.ExecuteAsync"/> and observes its pooled ValueTask.
/// </summary>
internal sealed class NbdRequestContext : IThreadPoolWorkItem
{
    private readonly NbdConnection _connection;
    private readonly Action _onCompleted;
    private NbdRequest _request;
    private byte[]? _payload;
    private ValueTask _running;

    public NbdRequestContext(NbdConnection connection)
    {
        _connection = connection;
        _onCompleted = Completed;
    }

    /// <summary>Queues the request; the payload (a write's data) now belongs to the request.</summary>
    public void Start(in NbdRequest request, byte[]? payload)
    {
        _request = request;
        _payload = payload;
        ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
    }

    public void Execute()
    {
        var payload = _payload;
        _payload = null;
#pragma warning disable CA2012 // Kept in a field to be observed exactly once, by Completed.
        _running = _connection.ExecuteAsync(_request, payload);
#pragma warning restore CA2012
        if (_running.IsCompleted)
        {
            Completed();
        }
        else
        {
            _running.GetAwaiter().UnsafeOnCompleted(_onCompleted);
        }
    }

    private void Completed()
    {
        var running = _running;
        _running = default;
        running.GetAwaiter().GetResult(); // returns the pooled state machine; ExecuteAsync does not throw
        _connection.Recycle(this);
    }
}
