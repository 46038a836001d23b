using Ferry.Storage.Replication;
using Ferry.Storage.Replication.Wire;

namespace Ferry.Agent.Api;

/// <summary>Body of POST /api/v1/volumes; <paramref name="CopyOf"/> makes an empty copy of an existing volume (its id) to be filled by a resync.</summary>
public sealed record CreateVolumeRequest(string Name, long Size, Guid? CopyOf = null);

/// <summary>Body of POST /api/v1/volumes/{name}/resize; shrinking discards data and must be asked for.</summary>
public sealed record ResizeVolumeRequest(long Size, bool Shrink = false);

/// <summary>Body of PUT /api/v1/volumes/{name}/replication: the other copies and how to replicate to them.</summary>
public sealed record ReplicationRequest(
    IReadOnlyList<PeerAddress> Peers,
    ReplicationProtocol Protocol = ReplicationProtocol.C,
    bool ChecksumResync = false,
    long ResyncRateLimit = 0,
    bool AllowTwoPrimaries = false);

/// <summary>
/// Body of POST /api/v1/volumes/{name}/promote: the epoch comes from the caller until the cluster grants
/// them. <paramref name="Dual"/> makes a second primary beside the current one (a migration handoff), at its epoch.
/// </summary>
public sealed record PromoteRequest(ulong Epoch, bool Force = false, bool Dual = false);

/// <summary>Body of POST /api/v1/volumes/{name}/verify: the peer host to verify, or null for every peer.</summary>
public sealed record VerifyRequest(string? Peer);

/// <summary>Body of POST /api/v1/volumes/{name}/resolve: the host whose copy's writes are discarded.</summary>
public sealed record ResolveRequest(string Discard);

/// <summary>What promote and resolve report: a warning for a forced promotion, what a resolution discards.</summary>
public sealed record VolumeActionResult(string Volume, string Message);
