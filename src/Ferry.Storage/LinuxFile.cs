using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Ferry.Storage;

/// <summary>The Linux file calls .NET does not expose: fdatasync, fallocate and sparse-file seeks.</summary>
internal static partial class LinuxFile
{
    // fallocate(2) modes, linux/falloc.h.
    public const int FallocKeepSize = 0x01;
    public const int FallocPunchHole = 0x02;
    public const int FallocZeroRange = 0x10;

    // lseek(2) whence values for sparse files, since Linux 3.1.
    public const int SeekData = 3;
    public const int SeekHole = 4;

    // errno values, asm-generic/errno-base.h and errno.h.
    public const int EPerm = 1;
    public const int EAcces = 13;
    public const int EFBig = 27;
    public const int ENoSpc = 28;
    public const int ERofs = 30;
    public const int ENxio = 6;
    public const int EIntr = 4;
    public const int EAgain = 11;
    public const int EInval = 22;
    public const int EOpNotSupp = 95;
    public const int EDQuot = 122;

    [LibraryImport("libc", EntryPoint = "fdatasync", SetLastError = true)]
    private static partial int FdatasyncCore(int fd);

    [LibraryImport("libc", EntryPoint = "fallocate", SetLastError = true)]
    private static partial int FallocateCore(int fd, int mode, long offset, long length);

    [LibraryImport("libc", EntryPoint = "lseek", SetLastError = true)]
    private static partial long LseekCore(int fd, long offset, int whence);

    [LibraryImport("libc", EntryPoint = "sendfile", SetLastError = true)]
    private static partial nint SendfileCore(int outFd, int inFd, ref long offset, nuint count);

    /// <summary>fdatasync(2); returns 0 or the errno.</summary>
    public static int Fdatasync(SafeFileHandle handle)
    {
        var addRef = false;
        try
        {
            handle.DangerousAddRef(ref addRef);
            return FdatasyncCore((int)handle.DangerousGetHandle()) == 0 ? 0 : Marshal.GetLastPInvokeError();
        }
        finally
        {
            if (addRef)
            {
                handle.DangerousRelease();
            }
        }
    }

    /// <summary>fallocate(2); returns 0 or the errno.</summary>
    public static int Fallocate(SafeFileHandle handle, int mode, long offset, long length)
    {
        var addRef = false;
        try
        {
            handle.DangerousAddRef(ref addRef);
            return FallocateCore((int)handle.DangerousGetHandle(), mode, offset, length) == 0 ? 0 : Marshal.GetLastPInvokeError();
        }
        finally
        {
            if (addRef)
            {
                handle.DangerousRelease();
            }
        }
    }

    /// <summary>lseek(2); returns the new offset, or -errno.</summary>
    public static long Lseek(SafeFileHandle handle, long offset, int whence)
    {
        var addRef = false;
        try
        {
            handle.DangerousAddRef(ref addRef);
            var result = LseekCore((int)handle.DangerousGetHandle(), offset, whence);
            return result >= 0 ? result : -Marshal.GetLastPInvokeError();
        }
        finally
        {
            if (addRef)
            {
                handle.DangerousRelease();
            }
        }
    }

    /// <summary>
    /// sendfile(2) from a file to a socket, retried when interrupted: the count sent (on a non-blocking
    /// socket, what its buffer took; 0 only for a range at or past the file's end), or -errno.
    /// </summary>
    public static long Sendfile(SafeHandle socket, SafeFileHandle file, long offset, int count)
    {
        var socketRef = false;
        var fileRef = false;
        try
        {
            socket.DangerousAddRef(ref socketRef);
            file.DangerousAddRef(ref fileRef);
            while (true)
            {
                var at = offset;
                var sent = SendfileCore((int)socket.DangerousGetHandle(), (int)file.DangerousGetHandle(), ref at, (nuint)count);
                if (sent >= 0)
                {
                    return sent;
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
            if (fileRef)
            {
                file.DangerousRelease();
            }

            if (socketRef)
            {
                socket.DangerousRelease();
            }
        }
    }

    /// <summary>The block error an errno means to an NBD client (proto.md "Error values": EDQUOT and EFBIG are ENOSPC).</summary>
    public static BlockError ToBlockError(int errno) => errno switch
    {
        ENoSpc or EDQuot or EFBig => BlockError.NoSpace,
        ERofs or EPerm or EAcces => BlockError.ReadOnly,
        EOpNotSupp => BlockError.NotSupported,
        EInval => BlockError.Invalid,
        _ => BlockError.Io,
    };
}
