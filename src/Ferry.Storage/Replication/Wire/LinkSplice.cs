using System.Net.Sockets;

namespace Ferry.Storage.Replication.Wire;

/// <summary>
/// The data of large writes taken from a plain TCP link with splice(2), socket to pipe to the copy's
/// file: one memory copy instead of two. For a socket read with blocking calls on a thread of its own
/// (<see cref="LinkReceiver"/>): a fill waits in the kernel. Not for TLS links, whose bytes must be
/// decrypted in user space.
/// </summary>
public sealed class LinkSplice : IDisposable
{
    /// <summary>Writes with at least this much still on the wire are spliced; smaller ones cost fewer system calls through the link's buffers.</summary>
    public const int AtLeast = 64 << 10;

    /// <summary>How much of a write's rest must have arrived before a waiting fill wakes: fewer, larger moves (each wake is a thread switch).</summary>
    private const int WakeAfter = 256 << 10;

    private readonly Socket _socket;

    private LinkSplice(Socket socket, SplicePipe pipe)
    {
        _socket = socket;
        Pipe = pipe;
    }

    public SplicePipe Pipe { get; }

    /// <summary>A splice for the link's (blocking) socket, or null where the system has no pipe to give.</summary>
    public static LinkSplice? TryCreate(Socket socket) =>
        SplicePipe.TryCreate() is { } pipe ? new LinkSplice(socket, pipe) : null;

    /// <summary>
    /// Moves up to <paramref name="max"/> bytes of the link into the pipe, waiting for a good part of them;
    /// 0 when the link ended or its receiving side was shut down. A broken link throws <see cref="IOException"/>,
    /// as the link's stream does.
    /// </summary>
    public int Fill(int max)
    {
        try
        {
            // The low-water mark makes the wait last until a good part of the rest has arrived, instead of waking
            // for each packet of it; the link's frames need it back at 1 (a small frame must wake its reader).
            SetLowWater(Math.Min(max, WakeAfter));
            long moved;
            try
            {
                moved = Pipe.Fill(_socket.SafeHandle, max);
            }
            finally
            {
                SetLowWater(1);
            }

            return moved >= 0 ? (int)moved : throw new IOException($"splice from the link failed: errno {-moved}");
        }
        catch (SocketException e)
        {
            throw new IOException($"the link broke: {e.Message}", e);
        }
    }

    private void SetLowWater(int bytes) =>
        _socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReceiveLowWater, bytes);

    public void Dispose() => Pipe.Dispose();
}
