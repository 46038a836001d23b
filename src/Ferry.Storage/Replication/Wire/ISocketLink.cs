using System.Net.Sockets;

namespace Ferry.Storage.Replication.Wire;

/// <summary>A link's stream over a TCP socket it does not expose itself (TLS): the socket, for what the kernel knows of it.</summary>
public interface ISocketLink
{
    Socket? Socket { get; }
}
