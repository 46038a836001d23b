using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Ferry.Storage;

/// <summary>
/// A block device over one (sparse) regular file. Reads and writes are positional (pread/pwrite), so
/// concurrent calls need no locking; they complete synchronously, the NBD server supplies the
/// concurrency. FLUSH and FUA are fdatasync; TRIM punches holes; allocation comes from SEEK_DATA/SEEK_HOLE.
/// </summary>
public sealed class FileBlockDevice : IBlockDevice, IDisposable
{
    // Shared source for zeroes when the file system cannot zero a range itself; never written to.
    private static readonly byte[] ZeroBuffer = new byte[1 << 20];

    private readonly SafeFileHandle _handle;
    private long _size;

    private FileBlockDevice(SafeFileHandle handle, bool readOnly)
    {
        _handle = handle;
        IsReadOnly = readOnly;
        _size = RandomAccess.GetLength(handle);
    }

    /// <summary>The file's size, as opened or as last set through <see cref="SetLength"/>.</summary>
    public long Size => Volatile.Read(ref _size);

    public bool IsReadOnly { get; }

    /// <summary>One file: an fdatasync through any connection covers every connection's writes.</summary>
    public bool FlushIsGlobal => true;

    /// <summary>Opens an existing file; throws <see cref="IOException"/> (or a subclass) when it cannot.</summary>
    public static FileBlockDevice Open(string path, bool readOnly)
    {
        var handle = File.OpenHandle(path, FileMode.Open, readOnly ? FileAccess.Read : FileAccess.ReadWrite, FileShare.ReadWrite);
        try
        {
            return new FileBlockDevice(handle, readOnly);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    public ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken ct)
    {
        try
        {
            Read(offset, destination.Span);
        }
        catch (BlockDeviceException e)
        {
            return ValueTask.FromException(e);
        }

        return ValueTask.CompletedTask;
    }

    /// <summary>Reads synchronously (pread); replication reads under its ordering lock with this.</summary>
    public void Read(long offset, Span<byte> destination)
    {
        try
        {
            while (!destination.IsEmpty)
            {
                var read = RandomAccess.Read(_handle, destination, offset);
                if (read == 0)
                {
                    // Past the end of the file (it shrank underneath us): the rest reads as zeroes.
                    destination.Clear();
                    break;
                }

                destination = destination[read..];
                offset += read;
            }
        }
        catch (IOException e) when (e is not BlockDeviceException)
        {
            throw Translate(e, "read");
        }
    }

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> source, bool fua, CancellationToken ct)
    {
        try
        {
            Write(offset, source.Span, fua);
        }
        catch (BlockDeviceException e)
        {
            return ValueTask.FromException(e);
        }

        return ValueTask.CompletedTask;
    }

    /// <summary>Writes synchronously (pwrite, fdatasync for FUA); replication writes under its ordering lock with this.</summary>
    public void Write(long offset, ReadOnlySpan<byte> source, bool fua)
    {
        try
        {
            ThrowIfReadOnly();
            RandomAccess.Write(_handle, source, offset);
            if (fua)
            {
                Sync();
            }
        }
        catch (IOException e) when (e is not BlockDeviceException)
        {
            throw Translate(e, "write");
        }
    }

    /// <summary>Writes <paramref name="count"/> bytes a splice pipe holds (page cache, like <see cref="Write"/>); on failure the pipe keeps the rest.</summary>
    public void WriteFrom(SplicePipe pipe, long offset, int count)
    {
        ThrowIfReadOnly();
        var errno = pipe.WriteTo(_handle, offset, count);
        if (errno != 0)
        {
            throw Failure(errno, "write");
        }
    }

    /// <summary>
    /// Sends up to <paramref name="count"/> bytes at <paramref name="offset"/> from the page cache to a
    /// socket with sendfile(2), the socket taking the pages by reference instead of a copy: the count
    /// sent, or -errno (EAGAIN when a non-blocking socket's buffer is full).
    /// </summary>
    public long SendTo(SafeHandle socket, long offset, int count) => LinuxFile.Sendfile(socket, _handle, offset, count);

    public ValueTask FlushAsync(CancellationToken ct)
    {
        try
        {
            Sync();
        }
        catch (IOException e)
        {
            return ValueTask.FromException(Translate(e, "flush"));
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask TrimAsync(long offset, long length, bool fua, CancellationToken ct) =>
        WriteZeroesAsync(offset, length, fua ? WriteZeroesFlags.Fua : WriteZeroesFlags.None, ct);

    public ValueTask WriteZeroesAsync(long offset, long length, WriteZeroesFlags flags, CancellationToken ct)
    {
        try
        {
            WriteZeroes(offset, length, flags);
        }
        catch (BlockDeviceException e)
        {
            return ValueTask.FromException(e);
        }

        return ValueTask.CompletedTask;
    }

    public void WriteZeroes(long offset, long length, WriteZeroesFlags flags)
    {
        try
        {
            ThrowIfReadOnly();
            ZeroRange(offset, length, flags);
            if ((flags & WriteZeroesFlags.Fua) != 0)
            {
                Sync();
            }
        }
        catch (IOException e) when (e is not BlockDeviceException)
        {
            throw Translate(e, "write zeroes");
        }
    }

    public ValueTask<int> MapAsync(long offset, long length, Memory<AllocationExtent> extents, CancellationToken ct)
    {
        try
        {
            return ValueTask.FromResult(Map(offset, length, extents.Span));
        }
        catch (IOException e)
        {
            return ValueTask.FromException<int>(Translate(e, "map"));
        }
    }

    /// <summary>Whether the whole range is a hole (reads as zeroes, holds no data); synchronous, for replication's ordering lock.</summary>
    public bool IsHole(long offset, long length)
    {
        // SEEK_DATA alone answers it. SEEK_HOLE would find where the data ends, which on some file
        // systems (tmpfs) means walking every page up to the next hole: for a full file, its whole length.
        var end = Math.Min(offset + length, Size);
        var data = LinuxFile.Lseek(_handle, offset, LinuxFile.SeekData);
        return data == -LinuxFile.ENxio || data >= end;
    }

    /// <summary>Grows (sparsely) or shrinks the file, durably; connections negotiated before keep their size.</summary>
    public void SetLength(long length)
    {
        RandomAccess.SetLength(_handle, length);
        Sync();
        Volatile.Write(ref _size, length);
    }

    public void Dispose() => _handle.Dispose();

    private void ZeroRange(long offset, long length, WriteZeroesFlags flags)
    {
        // A punched hole reads as zeroes and frees the space; ZERO_RANGE keeps the blocks allocated.
        if ((flags & WriteZeroesFlags.NoHole) == 0
            && TryFallocate(LinuxFile.FallocPunchHole | LinuxFile.FallocKeepSize, offset, length))
        {
            return;
        }

        if (TryFallocate(LinuxFile.FallocZeroRange | LinuxFile.FallocKeepSize, offset, length))
        {
            return;
        }

        if ((flags & WriteZeroesFlags.FastZero) != 0)
        {
            throw new BlockDeviceException(BlockError.NotSupported, "the file system cannot zero a range faster than writing zeroes");
        }

        while (length > 0)
        {
            var chunk = (int)Math.Min(length, ZeroBuffer.Length);
            RandomAccess.Write(_handle, ZeroBuffer.AsSpan(0, chunk), offset);
            offset += chunk;
            length -= chunk;
        }
    }

    /// <summary>True when fallocate did it, false when the file system does not support the mode.</summary>
    private bool TryFallocate(int mode, long offset, long length)
    {
        var errno = LinuxFile.Fallocate(_handle, mode, offset, length);
        return errno switch
        {
            0 => true,
            LinuxFile.EOpNotSupp => false,
            _ => throw Failure(errno, "fallocate"),
        };
    }

    private int Map(long offset, long length, Span<AllocationExtent> extents)
    {
        var end = Math.Min(offset + length, Size);
        var count = 0;
        while (offset < end && count < extents.Length)
        {
            var data = LinuxFile.Lseek(_handle, offset, LinuxFile.SeekData);
            if (data == -LinuxFile.ENxio)
            {
                data = end; // no data from here to the end of the file
            }
            else if (data < 0)
            {
                // The file system cannot tell (EINVAL): report data, which is always safe.
                extents[count++] = new AllocationExtent(end - offset, AllocationFlags.Data);
                break;
            }

            if (data > offset)
            {
                var holeEnd = Math.Min(data, end);
                extents[count++] = new AllocationExtent(holeEnd - offset, AllocationFlags.Hole | AllocationFlags.Zero);
                offset = holeEnd;
                continue;
            }

            var hole = LinuxFile.Lseek(_handle, offset, LinuxFile.SeekHole);
            var dataEnd = hole < 0 ? end : Math.Min(hole, end);
            extents[count++] = new AllocationExtent(dataEnd - offset, AllocationFlags.Data);
            offset = dataEnd;
        }

        return count;
    }

    private void Sync()
    {
        var errno = LinuxFile.Fdatasync(_handle);
        if (errno != 0)
        {
            throw Failure(errno, "fdatasync");
        }
    }

    private void ThrowIfReadOnly()
    {
        if (IsReadOnly)
        {
            throw new BlockDeviceException(BlockError.ReadOnly, "the device is read-only");
        }
    }

    private static BlockDeviceException Failure(int errno, string operation) =>
        new(LinuxFile.ToBlockError(errno), $"{operation} failed: errno {errno}");

    // .NET reports the errno of a failed pread/pwrite as the IOException's HResult on Linux.
    private static BlockDeviceException Translate(IOException e, string operation) =>
        e as BlockDeviceException ?? new BlockDeviceException(LinuxFile.ToBlockError(e.HResult), $"{operation} failed: {e.Message}");
}
