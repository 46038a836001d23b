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

    private readonly Socket _socket;
    private readonly byte[] _peek = new byte[1];

    private LinkSplice(Socket socket, SplicePipe pipe)
    {
        _socket = socket;
        Pipe = pipe;
    }

    public SplicePipe Pipe { get; }

    /// <summary>A splice for the link's socket, or null where the system has no pipe to give.</summary>
    public static LinkSplice? TryCreate(Socket socket) =>
        SplicePipe.TryCreate() is { } pipe ? new LinkSplice(socket, pipe) : null;

    /// <summary>Moves up to <paramref name="max"/> bytes of the link into the pipe, waiting for the first; 0 when the link ended.</summary>
    public async ValueTask<int> FillAsync(int max, CancellationToken ct)
    {
        while (true)
        {
            var moved = Pipe.Fill(_socket.SafeHandle, max);
            if (moved >= 0)
            {
                return (int)moved;
            }

            if (!SplicePipe.NothingYet(moved))
            {
                throw new IOException($"splice from the link failed: errno {-moved}");
            }

            // A peek waits for data without taking it, the way the socket's other reads wait.
            if (await _socket.ReceiveAsync(_peek, SocketFlags.Peek, ct).ConfigureAwait(false) == 0)
            {
                return 0;
            }
        }
    }

    public void Dispose() => Pipe.Dispose();
}
