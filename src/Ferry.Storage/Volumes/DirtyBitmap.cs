using System.Numerics;

namespace Ferry.Storage.Volumes;

/// <summary>
/// One bit per block (4 KiB by default) of a volume: set for blocks a peer copy may lack. Marking is
/// lock-free and allocation-free, because it happens on the write path before the write is
/// acknowledged; reading ranges out is for resync and runs beside it.
/// </summary>
public sealed class DirtyBitmap
{
    private const int BitsPerWord = 64;

    private readonly ulong[] _words;

    public DirtyBitmap(long volumeSize, int blockSize = Superblock.DefaultBitmapBlockSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(volumeSize);
        if (blockSize <= 0 || !BitOperations.IsPow2(blockSize))
        {
            throw new ArgumentOutOfRangeException(nameof(blockSize), "a block size is a positive power of two");
        }

        BlockSize = blockSize;
        Blocks = (volumeSize + blockSize - 1) / blockSize;
        _words = new ulong[(Blocks + BitsPerWord - 1) / BitsPerWord];
    }

    public int BlockSize { get; }

    public long Blocks { get; }

    /// <summary>The words as stored on disk (little-endian ulongs, bit i of word w is block 64·w + i).</summary>
    public ReadOnlySpan<ulong> Words => _words;

    /// <summary>Marks every block touched by the byte range; a zero-length range marks nothing.</summary>
    public void Mark(long offset, long length)
    {
        if (length <= 0)
        {
            return;
        }

        var (first, last) = BlockRange(offset, length);
        for (var block = first; block <= last;)
        {
            var word = block / BitsPerWord;
            var bit = (int)(block % BitsPerWord);
            var count = (int)Math.Min(BitsPerWord - bit, last - block + 1);
            var mask = Mask(bit, count);

            // Most writes re-mark blocks that are already dirty: read first, write only on change.
            if ((Volatile.Read(ref _words[word]) & mask) != mask)
            {
                Interlocked.Or(ref _words[word], mask);
            }

            block += count;
        }
    }

    /// <summary>Clears the blocks wholly inside the byte range (a partly covered block stays dirty).</summary>
    public void Clear(long offset, long length)
    {
        if (length <= 0)
        {
            return;
        }

        var first = (offset + BlockSize - 1) / BlockSize;
        var last = Math.Min(((offset + length) / BlockSize) - 1, Blocks - 1);
        for (var block = first; block <= last;)
        {
            var word = block / BitsPerWord;
            var bit = (int)(block % BitsPerWord);
            var count = (int)Math.Min(BitsPerWord - bit, last - block + 1);
            Interlocked.And(ref _words[word], ~Mask(bit, count));
            block += count;
        }
    }

    public void MarkAll() => Mark(0, Blocks * BlockSize);

    public bool IsDirty(long block) => (Volatile.Read(ref _words[block / BitsPerWord]) & (1UL << (int)(block % BitsPerWord))) != 0;

    public long CountDirty()
    {
        long count = 0;
        foreach (var word in _words)
        {
            count += BitOperations.PopCount(word);
        }

        return count;
    }

    /// <summary>The next run of dirty blocks at or after <paramref name="fromBlock"/>, at most <paramref name="maxBlocks"/> long; false when none is left.</summary>
    public bool TryFindRun(long fromBlock, long maxBlocks, out long firstBlock, out long blockCount)
    {
        firstBlock = NextWithState(fromBlock, dirty: true);
        if (firstBlock >= Blocks)
        {
            blockCount = 0;
            return false;
        }

        var end = Math.Min(NextWithState(firstBlock, dirty: false), firstBlock + maxBlocks);
        blockCount = end - firstBlock;
        return true;
    }

    /// <summary>Sets the bits of <paramref name="words"/> (a peer's marks) starting at word <paramref name="firstWord"/>; words past the end are ignored.</summary>
    public void Merge(long firstWord, ReadOnlySpan<ulong> words)
    {
        for (var i = 0; i < words.Length && firstWord + i < _words.Length; i++)
        {
            if (words[i] != 0)
            {
                Interlocked.Or(ref _words[firstWord + i], words[i]);
            }
        }

        ClearTail();
    }

    /// <summary>A copy of the marks as they are now (a resync works through a snapshot while writes go on).</summary>
    public DirtyBitmap Snapshot()
    {
        var copy = new DirtyBitmap(Blocks * BlockSize, BlockSize);
        for (var i = 0; i < _words.Length; i++)
        {
            copy._words[i] = Volatile.Read(ref _words[i]);
        }

        return copy;
    }

    public void ClearAll() => Array.Clear(_words);

    /// <summary>Loads words read from disk; bits past the last block are ignored.</summary>
    public void Load(ReadOnlySpan<ulong> words)
    {
        if (words.Length != _words.Length)
        {
            throw new ArgumentException($"expected {_words.Length} words, got {words.Length}", nameof(words));
        }

        words.CopyTo(_words);
        ClearTail();
    }

    private void ClearTail()
    {
        var tail = (int)(Blocks % BitsPerWord);
        if (tail != 0)
        {
            _words[^1] &= Mask(0, tail);
        }
    }

    private long NextWithState(long block, bool dirty)
    {
        while (block < Blocks)
        {
            var word = Volatile.Read(ref _words[block / BitsPerWord]);
            var bits = (dirty ? word : ~word) >> (int)(block % BitsPerWord);
            if (bits != 0)
            {
                return Math.Min(block + BitOperations.TrailingZeroCount(bits), Blocks);
            }

            block = ((block / BitsPerWord) + 1) * BitsPerWord;
        }

        return Blocks;
    }

    private (long First, long Last) BlockRange(long offset, long length) =>
        (offset / BlockSize, Math.Min((offset + length - 1) / BlockSize, Blocks - 1));

    private static ulong Mask(int bit, int count) => (count == BitsPerWord ? ulong.MaxValue : (1UL << count) - 1) << bit;
}
