namespace Ferry.Storage.Replication;

/// <summary>
/// An online verify against one peer: every block of the volume is compared by checksum, a few ranges in
/// flight at once; blocks that differ are marked in the bitmap, so the resync that follows copies them
/// from this primary. Runs while the link replicates, paced by the resync rate limit.
/// </summary>
internal sealed class VerifyRun
{
    private const int ChunkBytes = 1024 * 1024;
    private const int ChunksInFlight = 8;
    private const int MaxListed = 16;

    private readonly ReplicatedVolume _owner;
    private readonly long _startedAt;
    private readonly DateTimeOffset _startedAtWall;
    private readonly List<long> _firstDifferences = [];
    private long _done;
    private long _differentBlocks;
    private DateTimeOffset? _finishedAt;
    private string? _error;

    public VerifyRun(ReplicatedVolume owner)
    {
        _owner = owner;
        _startedAt = owner.Time.GetTimestamp();
        _startedAtWall = owner.Time.GetUtcNow();
    }

    public bool IsRunning
    {
        get
        {
            lock (_firstDifferences)
            {
                return _finishedAt is null;
            }
        }
    }

    /// <summary>
    /// Compares the whole volume; returns the number of blocks marked because they differ. The run counts
    /// as running until <see cref="Finish"/>, after the resync that repairs them.
    /// </summary>
    public async Task<long> RunAsync(PeerLink link, CancellationToken ct)
    {
        var size = _owner.Volume.Size;
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(ChunkBytes);
        var inFlight = new Queue<ChecksumCompare>();
        try
        {
            for (long offset = 0; offset < size; offset += ChunkBytes)
            {
                if (inFlight.Count == ChunksInFlight)
                {
                    await CheckAsync(inFlight.Dequeue(), ct).ConfigureAwait(false);
                }

                await ResyncRun.PaceAsync(_owner, _startedAt, Interlocked.Read(ref _done), ct).ConfigureAwait(false);
                var length = (int)Math.Min(ChunkBytes, size - offset);
                inFlight.Enqueue(await link.SendChecksumRequestAsync(offset, length, buffer, ct).ConfigureAwait(false) ?? throw new IOException("the link was lost during the verify"));
            }

            while (inFlight.TryDequeue(out var compare))
            {
                await CheckAsync(compare, ct).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException)
        {
            Finish(e is OperationCanceledException ? "the link was lost during the verify" : e.Message);
            throw;
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }

        return Interlocked.Read(ref _differentBlocks);
    }

    public void Finish(string? error = null)
    {
        lock (_firstDifferences)
        {
            _error ??= error;
            _finishedAt ??= _owner.Time.GetUtcNow();
        }
    }

    public VerifyProgress Progress()
    {
        lock (_firstDifferences)
        {
            return new VerifyProgress(
                _owner.Volume.Size, Interlocked.Read(ref _done), Interlocked.Read(ref _differentBlocks), [.. _firstDifferences], _startedAtWall, _finishedAt, _error);
        }
    }

    private async Task CheckAsync(ChecksumCompare compare, CancellationToken ct)
    {
        await compare.Answered.WaitAsync(ct).ConfigureAwait(false);
        foreach (var (offset, length) in compare.DifferingRuns())
        {
            _owner.Bitmap.Mark(offset, length);
            Interlocked.Add(ref _differentBlocks, BlockChecksums.Count(length));
            lock (_firstDifferences)
            {
                if (_firstDifferences.Count < MaxListed)
                {
                    _firstDifferences.Add(offset);
                }
            }
        }

        Interlocked.Add(ref _done, compare.Length);
    }
}
