using Microsoft.Win32.SafeHandles;

namespace Ferry.Storage.Volumes;

/// <summary>
/// A volume copy's metadata file: the two superblock slots, the two activity log slots (both updated
/// durably and never in place), then the dirty bitmap.
/// </summary>
public sealed class MetadataFile : IDisposable
{
    private readonly SafeFileHandle _handle;
    private readonly byte[] _slot = new byte[Superblock.SlotSize];
    private readonly byte[] _activityLogSlot = new byte[ActivityLogRecord.SlotSize];
    private readonly Lock _lock = new();

    private MetadataFile(SafeFileHandle handle, Superblock current)
    {
        _handle = handle;
        Current = current;
    }

    public Superblock Current { get; private set; }

    /// <summary>The activity log slots follow the superblock slots.</summary>
    public const long ActivityLogOffset = Superblock.SlotSize * Superblock.Slots;

    /// <summary>The dirty bitmap follows the activity log slots.</summary>
    public const long BitmapOffset = ActivityLogOffset + (ActivityLogRecord.SlotSize * ActivityLogRecord.Slots);

    public static MetadataFile Create(string path, Superblock initial)
    {
        var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None);
        try
        {
            Reserve(handle, BitmapOffset + BitmapBytes(initial));
            var file = new MetadataFile(handle, initial with { Sequence = 0 });
            file.Write(initial with { Sequence = 1 });
            return file;
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Opens an existing metadata file; an error when no slot holds a valid superblock.</summary>
    public static Result<MetadataFile> Open(string path)
    {
        var handle = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
        var head = new byte[Superblock.SlotSize * Superblock.Slots];
        var read = RandomAccess.Read(handle, head, 0);
        if (Superblock.Newest(head.AsSpan(0, read)) is not { } newest)
        {
            handle.Dispose();
            return FerryError.Environment($"metadata file '{path}' has no valid superblock (damaged or not a Ferry volume)");
        }

        // Files made before metadata was reserved: reserved now if there is room, written into sparse otherwise.
        TryReserve(handle, RandomAccess.GetLength(handle));
        return new MetadataFile(handle, newest);
    }

    /// <summary>
    /// Sizes the file with its blocks allocated (fallocate), so that writing the superblock, the activity log
    /// or the bitmap never needs space a full file system no longer has: a volume whose data filled the
    /// disk still records generations, outdated peers and its log. File systems without fallocate get a
    /// sparse file, as before.
    /// </summary>
    private static void Reserve(SafeFileHandle handle, long length)
    {
        var error = TryReserve(handle, length);
        if (error != 0)
        {
            throw new IOException(error is LinuxFile.ENoSpc or LinuxFile.EDQuot
                ? $"no space left on the device for the volume's metadata ({length} bytes)"
                : $"cannot allocate the volume's metadata ({length} bytes): errno {error}");
        }
    }

    /// <summary>Reserves <paramref name="length"/> bytes; 0 when done or not supported (the file is then sized sparse), else the errno.</summary>
    private static int TryReserve(SafeFileHandle handle, long length)
    {
        var error = LinuxFile.Fallocate(handle, 0, 0, length);
        if (error is LinuxFile.EOpNotSupp)
        {
            RandomAccess.SetLength(handle, Math.Max(length, RandomAccess.GetLength(handle)));
            return 0;
        }

        return error;
    }

    /// <summary>Writes the next version to the other slot and syncs it, so a crash keeps the old or the new one.</summary>
    public void Update(Func<Superblock, Superblock> change)
    {
        lock (_lock)
        {
            Write(change(Current) with { Sequence = Current.Sequence + 1 });
        }
    }

    /// <summary>
    /// Reads the dirty bitmap region (a file from before the region existed reads as clean). The words
    /// are stored little-endian, the byte order of every host Ferry runs on (x86-64, arm64).
    /// </summary>
    public DirtyBitmap ReadBitmap()
    {
        var current = Current;
        var bitmap = new DirtyBitmap(current.Size, current.BitmapBlockSize);
        var bytes = new byte[bitmap.Words.Length * sizeof(ulong)];
        RandomAccess.Read(_handle, bytes, BitmapOffset);
        bitmap.Load(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ulong>(bytes));
        return bitmap;
    }

    /// <summary>Writes the whole bitmap and syncs it (on clean shutdown and when the activity log is cleared).</summary>
    public void WriteBitmap(DirtyBitmap bitmap)
    {
        lock (_lock)
        {
            // Copied under the lock: a copy taken earlier could overwrite bits a concurrent
            // WriteBitmapRange has just made durable for an extent leaving the activity log.
            var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(bitmap.Words).ToArray();
            if (RandomAccess.GetLength(_handle) < BitmapOffset + BitmapBytes(Current))
            {
                Reserve(_handle, BitmapOffset + BitmapBytes(Current));
            }

            RandomAccess.Write(_handle, bytes, BitmapOffset);
            RandomAccess.FlushToDisk(_handle);
        }
    }

    /// <summary>
    /// Writes the 4 KiB pages of the bitmap region that hold the bits of the given blocks, and syncs
    /// them; the other bits of those pages are written too, as they are in memory now.
    /// </summary>
    public void WriteBitmapRange(DirtyBitmap bitmap, long firstBlock, long blockCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(firstBlock);
        ArgumentOutOfRangeException.ThrowIfNegative(blockCount);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(firstBlock + blockCount, bitmap.Blocks, nameof(blockCount));
        if (blockCount == 0)
        {
            return;
        }

        const int wordsPerPage = Superblock.SlotSize / sizeof(ulong);
        const long blocksPerPage = wordsPerPage * 64L;
        var firstWord = (int)(firstBlock / blocksPerPage * wordsPerPage);
        var endWord = (int)Math.Min((((firstBlock + blockCount - 1) / blocksPerPage) + 1) * wordsPerPage, bitmap.Words.Length);

        // Sliced as words before viewing as bytes: the whole bitmap of a large volume is more bytes than a span holds.
        var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(bitmap.Words[firstWord..endWord]);
        lock (_lock)
        {
            RandomAccess.Write(_handle, bytes, BitmapOffset + ((long)firstWord * sizeof(ulong)));
            RandomAccess.FlushToDisk(_handle);
        }
    }

    /// <summary>The newest valid activity log record; null when none was written or both slots are torn.</summary>
    public ActivityLogRecord? ReadActivityLog()
    {
        var region = new byte[ActivityLogRecord.SlotSize * ActivityLogRecord.Slots];
        var read = RandomAccess.Read(_handle, region, ActivityLogOffset);
        return ActivityLogRecord.Newest(region.AsSpan(0, read));
    }

    /// <summary>Writes a version of the activity log to its slot (<c>Sequence % 2</c>) and syncs it.</summary>
    public void WriteActivityLog(ActivityLogRecord record)
    {
        lock (_lock)
        {
            record.Encode(_activityLogSlot);
            RandomAccess.Write(_handle, _activityLogSlot, ActivityLogOffset + ((long)ActivityLogRecord.SlotFor(record.Sequence) * ActivityLogRecord.SlotSize));
            RandomAccess.FlushToDisk(_handle);
        }
    }

    /// <summary>Bytes of the bitmap region for a volume, whole 4 KiB pages.</summary>
    private static long BitmapBytes(Superblock superblock)
    {
        var blocks = (superblock.Size + superblock.BitmapBlockSize - 1) / superblock.BitmapBlockSize;
        var bytes = (blocks + 63) / 64 * sizeof(ulong);
        return (bytes + Superblock.SlotSize - 1) / Superblock.SlotSize * Superblock.SlotSize;
    }

    private void Write(Superblock next)
    {
        next.Encode(_slot);
        RandomAccess.Write(_handle, _slot, (long)Superblock.SlotFor(next.Sequence) * Superblock.SlotSize);
        RandomAccess.FlushToDisk(_handle);
        Current = next;
    }

    public void Dispose() => _handle.Dispose();
}
