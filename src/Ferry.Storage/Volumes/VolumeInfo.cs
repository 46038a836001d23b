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

/// <summary>
/// The state of one copy. Until replication connects copies, a volume's only copy is primary (its
/// agent serves it) and stand-alone.
/// </summary>
public sealed record CopyState(DiskState Disk, CopyRole Role, ConnectionState Connection);

public enum ConnectionState
{
    StandAlone,
    Connecting,
    Connected,
    SyncSource,
    SyncTarget,
}
