using System.Buffers;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Ferry.Storage;

/// <summary>
/// A kernel pipe used to move data from a socket into a file with splice(2): the socket's pages go into
/// the pipe by reference and are copied once, into the file's page cache, instead of twice (into a user
/// buffer by recv and out of it by pwrite). Holds at most <see cref="Capacity"/> bytes.
/// </summary>
public sealed partial class SplicePipe : IDisposable
{
    /// <summary>The most one fill moves: the pipe's size, 1 MiB (the default pipe-max-size).</summary>
    public const int Capacity = 1 << 20;

    private const int OCloexec = 0x80000;
    private const int ONonblock = 0x800;
    private const int FSetPipeSize = 1031;
    private const uint SpliceMove = 1;
    private const uint SpliceNonblock = 2;
    private const int EAgain = 11;
    private const int EIntr = 4;
    private const int EInval = 22;

    private readonly SafeFileHandle _read;
    private readonly SafeFileHandle _write;
    private int _held;

    private SplicePipe(SafeFileHandle read, SafeFileHandle write)
    {
        _read = read;
        _write = write;
    }

    /// <summary>Bytes in the pipe, moved in by <see cref="Fill"/> and not yet written out or dropped.</summary>
    public int Held => _held;

    /// <summary>A new pipe of <see cref="Capacity"/> bytes; null where the system offers none (not Linux, no descriptors left).</summary>
    public static SplicePipe? TryCreate()
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }

        Span<int> fds = stackalloc int[2];
        if (Pipe2(ref MemoryMarshal.GetReference(fds), OCloexec | ONonblock) != 0)
        {
            return null;
        }

        var pipe = new SplicePipe(new SafeFileHandle(fds[0], ownsHandle: true), new SafeFileHandle(fds[1], ownsHandle: true));
        if (Fcntl(fds[1], FSetPipeSize, Capacity) < Capacity)
        {
            pipe.Dispose();
            return null;
        }

        return pipe;
    }

    /// <summary>
    /// Moves up to <paramref name="max"/> bytes from the socket into the pipe, waiting for some if the socket
    /// blocks: the count moved, 0 at the end of the stream, or -errno.
    /// </summary>
    public unsafe long Fill(SafeHandle socket, int max)
    {
        var room = Math.Min(max, Capacity - _held);
        var addRef = false;
        try
        {
            socket.DangerousAddRef(ref addRef);
            while (true)
            {
                var moved = Splice((int)socket.DangerousGetHandle(), null, (int)_write.DangerousGetHandle(), null, (nuint)room, SpliceMove | SpliceNonblock);
                if (moved >= 0)
                {
                    _held += (int)moved;
                    return moved;
                }

                var errno = Marshal.GetLastPInvokeError();
                if (errno != EIntr)
                {
                    return -errno;
                }
            }
        }
        finally
        {
            if (addRef)
            {
                socket.DangerousRelease();
            }
        }
    }

    /// <summary>
    /// Writes <paramref name="count"/> bytes from the pipe into the file at <paramref name="offset"/>
    /// (buffered, like pwrite); 0 or the errno of a failed write, after which the pipe still holds the rest.
    /// </summary>
    internal unsafe int WriteTo(SafeFileHandle file, long offset, int count)
    {
        var addRef = false;
        try
        {
            file.DangerousAddRef(ref addRef);
            while (count > 0)
            {
                long at = offset;
                var written = Splice((int)_read.DangerousGetHandle(), null, (int)file.DangerousGetHandle(), &at, (nuint)count, SpliceMove);
                if (written <= 0)
                {
                    var errno = written == 0 ? EAgain : Marshal.GetLastPInvokeError();
                    if (errno == EIntr)
                    {
                        continue;
                    }

                    // Files that take no splice (some devices and file systems) get the bytes through memory.
                    return errno == EInval ? CopyTo(file, offset, count) : errno;
                }

                _held -= (int)written;
                count -= (int)written;
                offset += written;
            }

            return 0;
        }
        finally
        {
            if (addRef)
            {
                file.DangerousRelease();
            }
        }
    }

    private int CopyTo(SafeFileHandle file, long offset, int count)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Min(count, 256 << 10));
        try
        {
            while (count > 0)
            {
                var read = ReadHeld(buffer.AsSpan(0, Math.Min(count, buffer.Length)));
                if (read < 0)
                {
                    return -read;
                }

                try
                {
                    RandomAccess.Write(file, buffer.AsSpan(0, read), offset);
                }
                catch (IOException e)
                {
                    // .NET gives the errno of a failed pwrite as the HResult on Linux.
                    return e.HResult;
                }

                count -= read;
                offset += read;
            }

            return 0;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Reads and drops whatever the pipe holds (what a failed write left in it).</summary>
    public void Drop()
    {
        Span<byte> scratch = stackalloc byte[16 << 10];
        while (_held > 0)
        {
            if (ReadHeld(scratch) < 0)
            {
                // Nothing more can come out of this pipe; it is not used again (Held stays non-zero).
                return;
            }
        }
    }

    /// <summary>Reads up to what the pipe holds into <paramref name="into"/>: the count read (at least 1), or -errno.</summary>
    private int ReadHeld(Span<byte> into)
    {
        while (true)
        {
            var read = Read((int)_read.DangerousGetHandle(), ref MemoryMarshal.GetReference(into), (nuint)Math.Min(_held, into.Length));
            if (read > 0)
            {
                _held -= (int)read;
                return (int)read;
            }

            // The pipe's write end is ours and open, so 0 (its end) cannot come while it holds bytes; take it as "nothing".
            var errno = read == 0 ? EAgain : Marshal.GetLastPInvokeError();
            if (errno != EIntr)
            {
                return -errno;
            }
        }
    }

    public void Dispose()
    {
        _read.Dispose();
        _write.Dispose();
    }

    [LibraryImport("libc", EntryPoint = "pipe2", SetLastError = true)]
    private static partial int Pipe2(ref int fds, int flags);

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int Fcntl(int fd, int command, int argument);

    [LibraryImport("libc", EntryPoint = "splice", SetLastError = true)]
    private static unsafe partial long Splice(int fdIn, long* offsetIn, int fdOut, long* offsetOut, nuint length, uint flags);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    private static partial long Read(int fd, ref byte buffer, nuint count);
}
