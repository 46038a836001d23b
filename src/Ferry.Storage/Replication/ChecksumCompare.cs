namespace Ferry.Storage.Replication;

/// <summary>
/// One range compared by checksum with a peer: the primary's checksums, taken under the ordering lock
/// when the request was queued, against the peer's, taken when the request reached the same point in
/// the stream of writes. So both describe the same moment, and a block that differs really differs.
/// </summary>
internal sealed class ChecksumCompare
{
    private readonly TaskCompletionSource _answered = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ulong[] _local;
    private byte[]? _peer;

    public ChecksumCompare(long offset, int length)
    {
        Offset = offset;
        Length = length;
        _local = new ulong[BlockChecksums.Count(length)];
    }

    public long Offset { get; }

    public int Length { get; }

    public Span<ulong> Local => _local;

    public int Blocks => _local.Length;

    /// <summary>Completes when the peer answered; faults when the link was lost first.</summary>
    public Task Answered => _answered.Task;

    /// <summary>The peer's checksums as they came off the link: <see cref="Blocks"/> little-endian 64-bit values.</summary>
    public void Answer(byte[] peer)
    {
        _peer = peer;
        _answered.TrySetResult();
    }

    public void Fail(string reason) => _answered.TrySetException(new IOException(reason));

    /// <summary>Runs of blocks whose checksums differ, as byte ranges; call after <see cref="Answered"/>.</summary>
    public IEnumerable<(long Offset, int Length)> DifferingRuns() => Runs(differing: true);

    /// <summary>Runs of blocks both copies hold alike.</summary>
    public IEnumerable<(long Offset, int Length)> IdenticalRuns() => Runs(differing: false);

    private IEnumerable<(long Offset, int Length)> Runs(bool differing)
    {
        if (_peer is null)
        {
            throw new InvalidOperationException("the peer has not answered");
        }

        const int Block = Wire.LinkWire.ChecksumBlock;
        for (var i = 0; i < _local.Length;)
        {
            if (Differs(i) != differing)
            {
                i++;
                continue;
            }

            var first = i;
            while (i < _local.Length && Differs(i) == differing)
            {
                i++;
            }

            var offset = Offset + ((long)first * Block);
            yield return (offset, (int)Math.Min((long)(i - first) * Block, Offset + Length - offset));
        }
    }

    private bool Differs(int block) => _local[block] != System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(_peer.AsSpan(block * sizeof(ulong)));
}
