using System.Net.Sockets;

namespace Ferry.Storage.Replication.Wire;

/// <summary>
/// The data of large writes taken from a plain TCP link with splice(2), socket to pipe to the copy's
/// file: one memory copy instead of two. Not for TLS links, whose bytes must be decrypted in user space.
/// </summary>
public sealed class LinkSplice : IDisposable
{
    /// <summary>Writes with at least this much still on the wire are spliced; smaller ones cost fewer system calls through the link's buffers.</summary>
    public const int AtLeast = 64 << 10;

    /// <summary>How much of a write's rest must have arrived before a waiting splice wakes: fewer, larger moves (each wake is a thread switch).</summary>
    private const int WakeAfter = 256 << 10;

    private readonly Socket _socket;
    private readonly byte[] _peek = new byte[1];

    private readonly bool _blocking;

    private LinkSplice(Socket socket, SplicePipe pipe, bool blocking)
    {
        _socket = socket;
        Pipe = pipe;
        _blocking = blocking;
    }

    public SplicePipe Pipe { get; }

    /// <summary>
    /// A splice for the link's socket, or null where the system has no pipe to give. A
    /// <paramref name="blocking"/> one is for a socket read with blocking calls on a thread of its own
    /// (<see cref="LinkReceiver"/>): its fills wait in the kernel. Otherwise the socket is made
    /// non-blocking, and a fill waits for data the way the socket's asynchronous reads do.
    /// </summary>
    public static LinkSplice? TryCreate(Socket socket, bool blocking = false)
    {
        if ((!blocking && !SplicePipe.MakeNonBlocking(socket.SafeHandle)) || SplicePipe.TryCreate() is not { } pipe)
        {
            return null;
        }

        return new LinkSplice(socket, pipe, blocking);
    }

    /// <summary>
    /// Moves up to <paramref name="max"/> bytes of the link into the pipe, waiting for the first; 0 when the
    /// link ended. A broken link throws <see cref="IOException"/>, as the link's stream does.
    /// </summary>
    public async ValueTask<int> FillAsync(int max, CancellationToken ct)
    {
        try
        {
            return await MoveAsync(max, ct).ConfigureAwait(false);
        }
        catch (SocketException e)
        {
            throw new IOException($"the link broke: {e.Message}", e);
        }
    }

    private async ValueTask<int> MoveAsync(int max, CancellationToken ct)
    {
        while (true)
        {
            var moved = _blocking ? FillWaiting(max) : Pipe.Fill(_socket.SafeHandle, max);
            if (moved >= 0)
            {
                return (int)moved;
            }

            if (!SplicePipe.NothingYet(moved))
            {
                throw new IOException($"splice from the link failed: errno {-moved}");
            }

            // A peek waits for data without taking it, the way the socket's other reads wait.
            SetLowWater(Math.Min(max, WakeAfter));
            try
            {
                if (await _socket.ReceiveAsync(_peek, SocketFlags.Peek, ct).ConfigureAwait(false) == 0)
                {
                    return 0;
                }
            }
            finally
            {
                SetLowWater(1);
            }
        }
    }

    /// <summary>A fill that waits in the kernel (the socket blocks); 0 once the receiving side was shut down.</summary>
    private long FillWaiting(int max)
    {
        SetLowWater(Math.Min(max, WakeAfter));
        try
        {
            return Pipe.Fill(_socket.SafeHandle, max);
        }
        finally
        {
            SetLowWater(1);
        }
    }

    // The low-water mark makes a wait last until a good part of the rest has arrived, instead of waking for each
    // packet of it; the link's frames need it back at 1 (a small frame must wake its reader).
    private void SetLowWater(int bytes) =>
        _socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReceiveLowWater, bytes);

    public void Dispose() => Pipe.Dispose();
}
