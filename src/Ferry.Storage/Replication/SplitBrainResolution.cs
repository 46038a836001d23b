namespace Ferry.Storage.Replication;

/// <summary>
/// Resolving a split brain (DESIGN invariant 6): automatically only where the decision provably discards
/// no write, otherwise by an operator naming the copy to discard, with a report of what is lost.
/// </summary>
public static class SplitBrainResolution
{
    /// <summary>
    /// The automatic resolution, DRBD's discard-zero-changes and nothing more: both copies started a new
    /// generation from the same one (equal bitmap ids), and one of them has no marked block, which proves
    /// it took no write since; it becomes the target of a bitmap sync from the other. If neither wrote, an
    /// empty resync from the copy with the larger current id aligns the ids. Returns null when the split
    /// must stay: both wrote, the bitmaps do not start from the same generation, or the copy to keep is
    /// inconsistent.
    /// </summary>
    /// <remarks>
    /// DRBD's other policies (discard the younger or older primary, the secondary, the copy with fewer
    /// changes) all discard acknowledged writes and are deliberately not offered.
    /// </remarks>
    public static SyncDecision? TryAutoResolve(CopyView local, CopyView peer)
    {
        var common = local.Ids.Bitmap;
        if (common == 0 || common != peer.Ids.Bitmap || local.Ids.Current == peer.Ids.Current)
        {
            return null;
        }

        bool localIdle = local.DirtyBlocks == 0, peerIdle = peer.DirtyBlocks == 0;
        if (!localIdle && !peerIdle)
        {
            return null;
        }

        var source = localIdle == peerIdle
            ? (local.Ids.Current > peer.Ids.Current ? CopySide.Local : CopySide.Peer)
            : (localIdle ? CopySide.Peer : CopySide.Local);
        if (!(source == CopySide.Local ? local : peer).IsConsistent)
        {
            return null;
        }

        var id = SyncDecision.Id(common);
        return SyncDecision.Sync(source, full: false, SyncRule.SplitBrainNoChanges, common, localIdle == peerIdle
            ? $"both copies started new generations after {id} but neither wrote a block; an empty resync aligns their ids"
            : $"both copies started new generations after {id}, but the target wrote nothing since (no marked block); nothing is discarded");
    }

    /// <summary>
    /// The operator's resolution (<c>--discard HOST</c>): the named copy loses every write the other lacks
    /// and becomes the target of a sync from the kept copy — a bitmap sync when both copies' marks start
    /// from the same generation (together they cover every block that differs), otherwise a full sync.
    /// Refused unless the copies are split (or unrelated), and when the copy to keep is inconsistent.
    /// </summary>
    public static Result<SplitBrainDiscard> Discard(CopyView local, CopyView peer, CopySide discarded)
    {
        var decision = SyncDecision.Decide(local, peer);
        if (decision.Outcome is not (SyncOutcome.SplitBrain or SyncOutcome.Unrelated))
        {
            return FerryError.WrongState($"cannot discard a copy: the copies are not split ({decision.Reason})");
        }

        var (victim, kept, keptSide) = discarded == CopySide.Local ? (local, peer, CopySide.Peer) : (peer, local, CopySide.Local);
        if (!kept.IsConsistent)
        {
            return FerryError.WrongState("cannot keep the other copy: its data is inconsistent (discard it instead, or repair it)");
        }

        // Same generation (an ambiguous crash) or the same bitmap generation: the marks of both copies
        // start from data they both held, so together they cover every block where the copies differ.
        var byBitmap = decision.Rule is SyncRule.SplitBrainSharedBitmap or SyncRule.AmbiguousCrash;
        var since = SyncDecision.Id(decision.CommonGeneration);
        var reason = decision.Rule == SyncRule.Unrelated
            ? "an operator discarded the copy, which shares no generation with the kept one; every block is copied"
            : byBitmap
                ? $"an operator discarded the writes the copy took since generation {since} ({victim.DirtyBlocks} marked blocks); the blocks marked in either bitmap are copied"
                : $"an operator discarded the writes the copy took since generation {since}; every block is copied";
        return new SplitBrainDiscard(
            SyncDecision.Sync(keptSide, full: !byBitmap, SyncRule.ManualDiscard, decision.CommonGeneration, reason),
            victim.Ids.Current,
            byBitmap ? victim.DirtyBlocks : null);
    }
}
