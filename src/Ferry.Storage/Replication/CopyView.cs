using Ferry.Storage.Replication.Wire;
using Ferry.Storage.Volumes;

namespace Ferry.Storage.Replication;

/// <summary>What a copy of a volume reports about itself when it connects to a peer copy: all the sync decision uses.</summary>
/// <param name="Ids">The copy's generation identifiers as persisted.</param>
/// <param name="Disk">The copy's persisted disk state; a diskless copy has nothing to compare.</param>
/// <param name="Primary">Whether the copy is primary now (serving a running VM).</param>
/// <param name="CrashedPrimary">Whether the copy stopped while primary and has not been resynced since: writes
/// in flight then may be on one copy and not the other.</param>
/// <param name="DirtyBlocks">Blocks marked in the copy's dirty bitmap, after the activity log of a crashed
/// primary has been folded in. Bits are set before a write is issued, so zero proves the copy took no write
/// since the generation its bitmap id names.</param>
public readonly record struct CopyView(GenerationIds Ids, DiskState Disk, bool Primary, bool CrashedPrimary, ulong DirtyBlocks)
{
    public bool IsFresh => GenerationRules.IsFresh(Ids);

    /// <summary>The view a peer's Hello frame gives of its copy.</summary>
    public static CopyView From(in HelloFrame hello) =>
        new(hello.Generations, hello.Disk, hello.Role == CopyRole.Primary, hello.CrashedPrimary, hello.DirtyBlocks);

    /// <summary>A fresh copy holds no data whatever its disk state says.</summary>
    internal bool IsConsistent => !IsFresh && Disk is DiskState.UpToDate or DiskState.Outdated;
}
