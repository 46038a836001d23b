using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Ferry.Storage.Replication.Wire;

/// <summary>What the kernel knows about a TCP socket that .NET does not expose.</summary>
internal static partial class LinuxSocket
{
    // SIOCOUTQ (TIOCOUTQ): bytes written to a TCP socket that its peer has not acknowledged yet.
    private const nuint SiocOutq = 0x5411;

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static partial int Ioctl(int fd, nuint request, out int value);

    /// <summary>Bytes sent on the socket (or waiting to be) that the peer's TCP has not acknowledged; -1 where unknown.</summary>
    public static long Unacknowledged(Socket socket)
    {
        if (!OperatingSystem.IsLinux())
        {
            return -1;
        }

        var handle = socket.SafeHandle;
        var addRef = false;
        try
        {
            handle.DangerousAddRef(ref addRef);
            return Ioctl((int)handle.DangerousGetHandle(), SiocOutq, out var value) == 0 ? value : -1;
        }
        catch (ObjectDisposedException)
        {
            return -1;
        }
        finally
        {
            if (addRef)
            {
                handle.DangerousRelease();
            }
        }
    }
}
