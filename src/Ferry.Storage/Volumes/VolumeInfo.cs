using Ferry.Storage.Replication.Wire;

namespace Ferry.Storage.Volumes;

/// <summary>A volume as the API and CLI show it.</summary>
/// <param name="Allocated">Bytes actually stored: the data file without its holes (thin provisioning).</param>
/// <param name="Copy">This host's copy: disk state, role and connection (DESIGN §4).</param>
public sealed record VolumeInfo(
    string Name,
    Guid Id,
    long Size,
    long Allocated,
    GenerationIds Generations,
    ulong HighestEpoch,
    DateTimeOffset CreatedAt,
    string DataPath,
    CopyState Copy);

/// <summary>The state of this host's copy and, for a primary, of its links to the other copies.</summary>
public sealed record CopyState(DiskState Disk, CopyRole Role, ConnectionState Connection)
{
    public ReplicationProtocol Protocol { get; init; } = ReplicationProtocol.C;

    public IReadOnlyList<Ferry.Storage.Replication.PeerStatus> Peers { get; init; } = [];

    /// <summary>Set when this primary learned it is stale (a newer epoch exists): it refuses writes.</summary>
    public string? FencedReason { get; init; }

    /// <summary>Bytes marked in the dirty bitmap: what some peer copy may lack.</summary>
    public long DirtyBytes { get; init; }

    /// <summary>The link from a primary: a secondary's, or, with two primaries, the other primary's.</summary>
    public Ferry.Storage.Replication.IncomingStatus? Incoming { get; init; }

    /// <summary>A second primary's link beside <see cref="Incoming"/>, during a migration's handoff of a volume with three copies.</summary>
    public Ferry.Storage.Replication.IncomingStatus? SecondIncoming { get; init; }
}

public enum ConnectionState
{
    StandAlone,
    Connecting,
    Connected,
    SyncSource,
    SyncTarget,
}
