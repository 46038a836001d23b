using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Ferry.Storage.Replication.Wire;

/// <summary>What the kernel knows about a TCP socket that .NET does not expose.</summary>
internal static partial class LinuxSocket
{
    private const int IpProtoTcp = 6;
    private const int TcpInfo = 11;

    // struct tcp_info (linux/tcp.h): tcpi_bytes_acked, a 64-bit count, since Linux 4.2.
    private const int BytesAckedOffset = 120;
    private const int TcpInfoSize = 256;

    [LibraryImport("libc", EntryPoint = "getsockopt", SetLastError = true)]
    private static unsafe partial int GetSockOpt(int fd, int level, int name, byte* value, ref int length);

    /// <summary>Bytes the peer's TCP has acknowledged on this socket since it connected; -1 where unknown.</summary>
    public static unsafe long BytesAcknowledged(Socket socket)
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
            var info = stackalloc byte[TcpInfoSize];
            var length = TcpInfoSize;
            return GetSockOpt((int)handle.DangerousGetHandle(), IpProtoTcp, TcpInfo, info, ref length) == 0 && length >= BytesAckedOffset + sizeof(long)
                ? *(long*)(info + BytesAckedOffset)
                : -1;
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
