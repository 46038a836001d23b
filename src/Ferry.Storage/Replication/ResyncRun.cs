using Ferry.Storage.Volumes;

namespace Ferry.Storage.Replication;

/// <summary>
/// One resync from this primary to a peer: it walks a snapshot of the marked blocks taken when the link
/// started replicating, sends each run of them read fresh under the ordering lock, and ends with
/// SyncEnd once every block is acknowledged. A few chunks are in flight at once, one while the
/// application writes (its I/O comes first), and an optional rate limit paces the rest. With checksum
/// resync on, each chunk is first compared by checksum and only the blocks that differ are sent.
/// </summary>
internal sealed class ResyncRun : IDisposable
{
    /// <summary>256 blocks of 4 KiB: 1 MiB per resync write.</summary>
    private const int ChunkBlocks = 256;
    private const int ChunksInFlight = 8;

    private readonly ReplicatedVolume _owner;
    private readonly SemaphoreSlim _window = new(ChunksInFlight, ChunksInFlight);
    private readonly long _startedAt;
    private readonly DateTimeOffset _startedAtWall;
    private DirtyBitmap? _snapshot;
    private long _total;
    private long _done;
    private int _inFlight;
    private TaskCompletionSource _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private DateTimeOffset? _finishedAt;

    public ResyncRun(ReplicatedVolume owner, bool full)
    {
        _owner = owner;
        Full = full;
        _startedAt = owner.Time.GetTimestamp();
        _startedAtWall = owner.Time.GetUtcNow();
    }

    public bool Full { get; }

    /// <summary>Under the ordering lock, as the link starts replicating: later writes go to the peer directly.</summary>
    public void TakeSnapshot(DirtyBitmap bitmap)
    {
        _snapshot = bitmap.Snapshot();
        _total = _snapshot.CountDirty() * _snapshot.BlockSize;
    }

    public async Task RunAsync(PeerLink link, CancellationToken ct)
    {
        var snapshot = _snapshot!;
        var blockSize = snapshot.BlockSize;
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(ChunkBlocks * blockSize);
        var compared = new Queue<ChecksumCompare>();
        var byChecksum = _owner.Settings.ChecksumResync;
        try
        {
            for (long from = 0; snapshot.TryFindRun(from, ChunkBlocks, out var first, out var count); from = first + count)
            {
                var offset = first * blockSize;
                var length = (int)Math.Min(count * blockSize, _owner.Volume.Size - offset);
                if (!byChecksum)
                {
                    await SendAsync(link, offset, length, buffer, ct).ConfigureAwait(false);
                    continue;
                }

                compared.Enqueue(await link.SendChecksumRequestAsync(offset, length, buffer, ct).ConfigureAwait(false) ?? throw new IOException("the link was lost during the resync"));
                if (compared.Count == ChunksInFlight)
                {
                    await SendDifferingAsync(link, compared.Dequeue(), buffer, ct).ConfigureAwait(false);
                }
            }

            while (compared.TryDequeue(out var compare))
            {
                await SendDifferingAsync(link, compare, buffer, ct).ConfigureAwait(false);
            }

            await WaitDrainedAsync(ct).ConfigureAwait(false);
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }

        var ended = AckWaiter.Rent(1);
        link.SendSyncEnd(_owner.IdsAtSyncEnd(), ended);
        // As a task, so that a link lost meanwhile cancels the wait (the waiter is signalled only after the link ends).
        if (await ended.WaitAsync().AsTask().WaitAsync(ct).ConfigureAwait(false) != Wire.AckStatus.Ok)
        {
            throw new IOException("the peer could not record the end of the resync");
        }

        _owner.FinishResync(link);
        _finishedAt = _owner.Time.GetUtcNow();
    }

    private async Task SendAsync(PeerLink link, long offset, int length, byte[] buffer, CancellationToken ct)
    {
        await _window.WaitAsync(ct).ConfigureAwait(false);
        if (_owner.ApplicationIsWriting)
        {
            await WaitDrainedAsync(ct).ConfigureAwait(false);
        }

        await PaceAsync(ct).ConfigureAwait(false);
        Interlocked.Increment(ref _inFlight);
        if (!await link.SendResyncBlockAsync(offset, length, buffer, ct).ConfigureAwait(false))
        {
            throw new IOException("the link was lost during the resync");
        }
    }

    /// <summary>Sends the blocks of a compared chunk that differ; the peer has the others already, so they count as done.</summary>
    private async Task SendDifferingAsync(PeerLink link, ChecksumCompare compare, byte[] buffer, CancellationToken ct)
    {
        await compare.Answered.WaitAsync(ct).ConfigureAwait(false);
        foreach (var (offset, length) in compare.IdenticalRuns())
        {
            Interlocked.Add(ref _done, length);
            _owner.ResyncBlockDone(link, offset, length);
        }

        foreach (var (offset, length) in compare.DifferingRuns())
        {
            await SendAsync(link, offset, length, buffer, ct).ConfigureAwait(false);
        }
    }

    public void Acknowledged(long length)
    {
        Interlocked.Add(ref _done, length);
        _window.Release();
        if (Interlocked.Decrement(ref _inFlight) == 0)
        {
            Volatile.Read(ref _drained).TrySetResult();
        }
    }

    public void Dispose() => _window.Dispose();

    public void Interrupted() => Volatile.Read(ref _drained).TrySetCanceled();

    public ResyncProgress Progress(TimeProvider time)
    {
        var done = Interlocked.Read(ref _done);
        var elapsed = time.GetElapsedTime(_startedAt).TotalSeconds;
        var rate = elapsed > 0 ? done / elapsed : 0;
        TimeSpan? left = _finishedAt is null && rate > 0 ? TimeSpan.FromSeconds((_total - done) / rate) : null;
        return new ResyncProgress(Full, _total, done, _startedAtWall, _finishedAt, rate, _finishedAt is null ? left : TimeSpan.Zero);
    }

    private async Task WaitDrainedAsync(CancellationToken ct)
    {
        while (Volatile.Read(ref _inFlight) > 0)
        {
            var drained = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Volatile.Write(ref _drained, drained);
            if (Volatile.Read(ref _inFlight) == 0)
            {
                break;
            }

            await drained.Task.WaitAsync(ct).ConfigureAwait(false);
        }
    }

    private Task PaceAsync(CancellationToken ct) => PaceAsync(_owner, _startedAt, Interlocked.Read(ref _done), ct);

    /// <summary>Waits until <paramref name="done"/> bytes since <paramref name="startedAt"/> are within the resync rate limit (verify uses it too).</summary>
    internal static async Task PaceAsync(ReplicatedVolume owner, long startedAt, long done, CancellationToken ct)
    {
        var limit = owner.Settings.ResyncRateLimit;
        if (limit <= 0)
        {
            return;
        }

        var due = TimeSpan.FromSeconds((double)done / limit) - owner.Time.GetElapsedTime(startedAt);
        if (due > TimeSpan.Zero)
        {
            await Task.Delay(due, owner.Time, ct).ConfigureAwait(false);
        }
    }
}
