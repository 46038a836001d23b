using Ferry.Storage.Volumes;

namespace Ferry.Storage.Replication;

/// <summary>
/// How a copy's generation identifiers change over its life, after DRBD's UUID scheme. Every function
/// is pure: the caller persists the result (superblock) before it acts on it, and supplies fresh random
/// values, which must be non-zero (zero marks "no generation") and differ from every id the copy holds.
/// </summary>
/// <remarks>
/// A generation is a stretch of writes that every copy holding it has in full. Ids only ever move
/// towards the history end, so comparing two tuples tells which copy descends from which
/// (<see cref="SyncDecision.Decide"/>).
/// </remarks>
public static class GenerationRules
{
    /// <summary>
    /// The ids of a copy that never held data: a new copy added to an existing volume. Such a copy is
    /// only ever a full-sync target. (A volume's first copy is created with a generation instead.)
    /// </summary>
    public static GenerationIds Fresh => default;

    public static bool IsFresh(GenerationIds ids) => ids.Current == 0;

    /// <summary>
    /// Whether a write the peer will not receive must first start a new generation
    /// (<see cref="StartNewGeneration"/>): when the current id is one the copy shared with its peer, the
    /// peer may hold it (as its current id, or as its bitmap id or in history after moving on), and writes
    /// under it would be invisible when the copies compare ids. A generation this copy started since is
    /// its alone, so later writes, restarts and reconnections without a resync need no new one; starting
    /// one anyway would only push history out.
    /// </summary>
    /// <param name="lastShared">The current id the copy last shared with its peer, persisted with its metadata:
    /// recorded when a handshake finds equal current ids, by both ends at the end of a resync (the source
    /// before it sends the end), and as the old current id when a new generation starts; 0 if unknown.</param>
    public static bool NeedsNewGeneration(GenerationIds ids, ulong lastShared) =>
        lastShared == 0 || lastShared == ids.Current;

    /// <summary>
    /// Starts a new data generation: call it, and persist the result, before the first write the peer
    /// will not receive, when <see cref="NeedsNewGeneration"/> says so — typically the first write after
    /// the connection was lost, or of a copy promoted without its peer. DRBD creates a new current UUID
    /// when a primary loses its peer or a disconnected node is promoted; we do it at the first write, as
    /// DRBD 9 does, so that a copy that was promoted but wrote nothing still holds its peer's generation,
    /// and reconnecting needs no split-brain resolution.
    /// </summary>
    /// <remarks>
    /// The old current id becomes the bitmap id: the dirty bitmap now records every block changed since
    /// that generation, which is what the peer still holds. If the bitmap id is already set, the bitmap
    /// already covers every change since an older generation, so it keeps that id and the old current id
    /// goes to history (DRBD 8.4 overwrote the bitmap id, losing the generation the bitmap is relative
    /// to). The new generation is needed even then: a peer can hold this copy's current generation while
    /// its bitmap id is set (it recorded the end of a resync this copy did not, or this copy recorded the
    /// start of a resync within one generation and the peer did not), and without a new id this copy's
    /// writes would look like none.
    /// </remarks>
    public static GenerationIds StartNewGeneration(GenerationIds ids, ulong fresh)
    {
        RequireNew(ids, fresh, nameof(fresh));
        return ids.Bitmap == 0
            ? new GenerationIds(fresh, ids.Current, ids.History1, ids.History2)
            : new GenerationIds(fresh, ids.Bitmap, ids.Current, ids.History1);
    }

    /// <summary>
    /// The sync source at the start of a resync (bitmap or full; for a full sync it has set every bit).
    /// The target will take the source's bitmap id as its current id (<see cref="BeginSyncAsTarget"/>), so
    /// that, should the resync be interrupted, the next connection resumes it as a bitmap sync of the
    /// blocks still marked. A source without a bitmap id (a full sync, or a resync within one generation)
    /// takes a new sync id for it, as DRBD does; one that has a bitmap id keeps it, since its marks
    /// already cover every block the target may lack.
    /// </summary>
    /// <remarks>
    /// The source merges the target's bitmap into its own before persisting this, so that the marks of
    /// the target's own changes survive the target's ids being replaced. The source persists first: if
    /// only the target had, its unknown sync id would look like a split brain.
    /// </remarks>
    public static GenerationIds BeginSyncAsSource(GenerationIds source, ulong syncId)
    {
        RequireNew(source, syncId, nameof(syncId));
        return source.Bitmap == 0 ? source with { Bitmap = syncId } : source;
    }

    /// <summary>
    /// The sync target at the start of a resync, from the source's ids after <see cref="BeginSyncAsSource"/>.
    /// The target's data is from now on a partial copy of the source's, so it takes the source's lineage,
    /// with the source's bitmap id as its current id, and is Inconsistent until <see cref="FinishSyncAsTarget"/>.
    /// </summary>
    public static GenerationIds BeginSyncAsTarget(GenerationIds sourceAfterBegin)
    {
        if (sourceAfterBegin.Bitmap == 0)
        {
            throw new ArgumentException("the source has not begun the resync: its bitmap id is not set", nameof(sourceAfterBegin));
        }

        return sourceAfterBegin with { Current = sourceAfterBegin.Bitmap, Bitmap = 0 };
    }

    /// <summary>
    /// The sync target once every marked block has arrived: it holds the source's generation, so it takes
    /// the source's ids as they will be after <see cref="FinishSyncAsSource"/>, and both copies end with
    /// identical tuples. The target persists this (and UpToDate) before the source clears its bitmap id:
    /// if the source never gets to, the next connection sees equal current ids with a bitmap id left on
    /// the source and runs a short bitmap sync, instead of the full sync the other order would need.
    /// </summary>
    public static GenerationIds FinishSyncAsTarget(GenerationIds source) => FinishSyncAsSource(source);

    /// <summary>
    /// The sync source once the target has recorded the end: the bitmap id moves to history and is
    /// cleared, as DRBD clears the bitmap UUID when a resync finishes; the copies are identical again and
    /// the bitmap tracks nothing.
    /// </summary>
    public static GenerationIds FinishSyncAsSource(GenerationIds source) =>
        source.Bitmap == 0 ? source : new GenerationIds(source.Current, 0, source.Bitmap, source.History1);

    private static void RequireNew(GenerationIds ids, ulong fresh, string parameter)
    {
        if (fresh == 0 || fresh == ids.Current || fresh == ids.Bitmap || fresh == ids.History1 || fresh == ids.History2)
        {
            throw new ArgumentException($"a new generation id must be non-zero and unused by the copy, got {fresh:X16}", parameter);
        }
    }
}
