using Ferry.Storage.Replication.Wire;
using Ferry.Storage.Volumes;

namespace Ferry.Storage.Replication;

/// <summary>The decision table (docs/replication-decisions.md), after DRBD's drbd_uuid_compare and sync handshake.</summary>
public sealed partial record SyncDecision
{
    /// <summary>
    /// Decides how two copies that just connected reconcile their data. Pure and symmetric: the peer,
    /// deciding with the arguments swapped, reaches <see cref="Mirror"/> of this decision, so both ends
    /// agree without another round trip.
    /// </summary>
    public static SyncDecision Decide(CopyView local, CopyView peer)
    {
        RequireDisk(local, nameof(local));
        RequireDisk(peer, nameof(peer));
        if (local.IsFresh || peer.IsFresh)
        {
            return DecideFresh(local, peer);
        }

        return local.Ids.Current == peer.Ids.Current ? DecideSameGeneration(local, peer) : DecideByLineage(local, peer);
    }

    private static SyncDecision DecideFresh(CopyView local, CopyView peer)
    {
        if (local.IsFresh && peer.IsFresh)
        {
            return new(SyncOutcome.NoSync, SyncRule.BothFresh, 0, "both copies are new and hold no data");
        }

        var source = local.IsFresh ? CopySide.Peer : CopySide.Local;
        return View(source, local, peer).IsConsistent
            ? Sync(source, full: true, SyncRule.FreshCopy, 0, "the target is a new copy that never held data; it receives every block")
            : NoSource(0, "the only copy that ever held data is inconsistent");
    }

    // Equal current ids: the same generation, whose writes both copies have (a copy that wrote without
    // the other would have started a new one, GenerationRules.NeedsNewGeneration). What can still differ
    // are writes in flight when a primary crashed and blocks a resync had not finished, and both are
    // marked in a bitmap; so the direction is free as far as acknowledged data goes, and is chosen not to
    // disturb the copy the cluster trusts or the VM running on it.
    private static SyncDecision DecideSameGeneration(CopyView local, CopyView peer)
    {
        var generation = local.Ids.Current;
        if (local.IsConsistent != peer.IsConsistent)
        {
            // DRBD syncs only the marked blocks here, trusting whoever made the disk Inconsistent to have
            // marked it all; nothing in the ids says which blocks are bad, so we copy them all.
            return Sync(
                local.IsConsistent ? CopySide.Local : CopySide.Peer,
                full: true,
                SyncRule.InconsistentTarget,
                generation,
                $"both copies are at generation {Id(generation)}, but the target is inconsistent and nothing tells which blocks; every block is copied");
        }

        if (!local.IsConsistent)
        {
            return NoSource(generation, "both copies are inconsistent");
        }

        if (!MayDiffer(local) && !MayDiffer(peer))
        {
            return new(SyncOutcome.NoSync, SyncRule.SameGeneration, generation, $"both copies hold generation {Id(generation)}");
        }

        var (order, why) = CompareAsSource(local, peer);
        if (order == 0)
        {
            return local.DirtyBlocks == 0
                ? new(SyncOutcome.NoSync, SyncRule.SameGeneration, generation, $"both copies hold generation {Id(generation)} and neither marked a block")
                : new(SyncOutcome.SplitBrain, SyncRule.AmbiguousCrash, generation,
                    $"both copies crashed as primary at generation {Id(generation)} with the same marks, so nothing orders them; an operator must choose the copy to discard");
        }

        var resyncNotFinished = local.Ids.Bitmap != 0 || peer.Ids.Bitmap != 0;
        return Sync(
            order > 0 ? CopySide.Local : CopySide.Peer,
            full: false,
            resyncNotFinished ? SyncRule.ResyncNotFinished : SyncRule.CrashedPrimary,
            generation,
            resyncNotFinished
                ? $"both copies hold generation {Id(generation)}, but a resync ended without the source recording it; the blocks still marked are copied from the {why}"
                : $"both copies hold generation {Id(generation)}, but a copy stopped while primary with writes in flight; its activity-log extents are copied from the {why}");
    }

    private static bool MayDiffer(CopyView copy) => copy.Ids.Bitmap != 0 || copy.CrashedPrimary;

    // A total order, the same from both ends: the copy the cluster trusts (UpToDate over Outdated), then
    // the primary now (resyncing under a running VM would change data it has read), then the copy with
    // unrecorded resync marks, then the crashed primary (with protocol A it alone may hold acknowledged
    // writes), then the one with more marks; the tuple comparison is an arbitrary but agreed last resort.
    private static (int Order, string Why) CompareAsSource(CopyView a, CopyView b)
    {
        if (a.Disk != b.Disk)
        {
            return (a.Disk.CompareTo(b.Disk), "UpToDate copy");
        }

        if (a.Primary != b.Primary)
        {
            return (a.Primary.CompareTo(b.Primary), "copy that is primary now");
        }

        if ((a.Ids.Bitmap != 0) != (b.Ids.Bitmap != 0))
        {
            return ((a.Ids.Bitmap != 0).CompareTo(b.Ids.Bitmap != 0), "former sync source");
        }

        if (a.CrashedPrimary != b.CrashedPrimary)
        {
            return (a.CrashedPrimary.CompareTo(b.CrashedPrimary), "copy that crashed as primary");
        }

        if (a.DirtyBlocks != b.DirtyBlocks)
        {
            return (a.DirtyBlocks.CompareTo(b.DirtyBlocks), "copy with more marked blocks");
        }

        var order = (a.Ids.Bitmap, a.Ids.History1, a.Ids.History2).CompareTo((b.Ids.Bitmap, b.Ids.History1, b.Ids.History2));
        return (Math.Sign(order), "copy chosen by comparing ids");
    }

    // Different current ids: at least one copy started a generation the other lacks. Whichever copy
    // still holds a generation the other moved on from missed writes; if both moved on, it is a split brain.
    private static SyncDecision DecideByLineage(CopyView local, CopyView peer)
    {
        GenerationIds l = local.Ids, p = peer.Ids;

        var localBehind = l.Current == p.Bitmap;
        if (localBehind != (p.Current == l.Bitmap))
        {
            var (source, behind) = localBehind ? (CopySide.Peer, l.Current) : (CopySide.Local, p.Current);
            return FromConsistentSource(local, peer, Sync(source, full: false, SyncRule.MissedWrites, behind,
                $"the target still holds generation {Id(behind)}, and the source's bitmap marks every block changed since; the blocks marked in either bitmap are copied"));
        }

        var localOlder = InHistory(p, l.Current);
        if (localOlder != InHistory(l, p.Current))
        {
            var (source, older) = localOlder ? (CopySide.Peer, l.Current) : (CopySide.Local, p.Current);
            return FromConsistentSource(local, peer, Sync(source, full: true, SyncRule.OlderGeneration, older,
                $"the target holds generation {Id(older)}, which the source left before its bitmap started; every block is copied"));
        }

        if (l.Bitmap != 0 && l.Bitmap == p.Bitmap)
        {
            return SplitBrainResolution.TryAutoResolve(local, peer)
                ?? Split(SyncRule.SplitBrainSharedBitmap, l.Bitmap, $"both copies took writes since generation {Id(l.Bitmap)}");
        }

        var common = NewestShared(l, p);
        return common != 0
            ? Split(SyncRule.SplitBrainSharedHistory, common, $"both copies moved on from generation {Id(common)}")
            : new(SyncOutcome.Unrelated, SyncRule.Unrelated, 0, "the copies share no generation: they are not copies of the same data");
    }

    private static SyncDecision Split(SyncRule rule, ulong common, string what) =>
        new(SyncOutcome.SplitBrain, rule, common, $"{what}; an operator must choose the copy whose writes are discarded");

    // An Inconsistent copy is a resync target that has not finished, or a new copy: its blocks are not
    // one generation's data, and it never served writes as such, so it can only ever receive. As DRBD
    // does, the consistent copy overwrites it in full; the marks cannot tell which blocks to fix.
    private static SyncDecision FromConsistentSource(CopyView local, CopyView peer, SyncDecision decision)
    {
        var source = decision.Source!.Value;
        if (View(source, local, peer).IsConsistent)
        {
            return decision;
        }

        var other = source == CopySide.Local ? CopySide.Peer : CopySide.Local;
        return View(other, local, peer).IsConsistent
            ? Sync(other, full: true, SyncRule.InconsistentSource, decision.CommonGeneration,
                "the ids name an inconsistent copy as the source; the consistent copy overwrites it instead, every block")
            : NoSource(decision.CommonGeneration, "both copies are inconsistent");
    }

    private static bool InHistory(GenerationIds ids, ulong generation) =>
        generation != 0 && (ids.History1 == generation || ids.History2 == generation);

    // The shared id nearest the head of both tuples; ties go to the larger id, so both ends pick the same.
    private static ulong NewestShared(GenerationIds l, GenerationIds p)
    {
        ReadOnlySpan<ulong> ls = [l.Bitmap, l.History1, l.History2];
        ReadOnlySpan<ulong> ps = [p.Bitmap, p.History1, p.History2];
        var (best, bestDepth) = (0UL, int.MaxValue);
        for (var i = 0; i < ls.Length; i++)
        {
            for (var j = 0; j < ps.Length; j++)
            {
                if (ls[i] != 0 && ls[i] == ps[j] && (i + j < bestDepth || (i + j == bestDepth && ls[i] > best)))
                {
                    (best, bestDepth) = (ls[i], i + j);
                }
            }
        }

        return best;
    }

    private static SyncDecision NoSource(ulong common, string why) =>
        new(SyncOutcome.NoConsistentSource, SyncRule.NoConsistentSource, common, $"no copy can be the source: {why}");

    private static CopyView View(CopySide side, CopyView local, CopyView peer) => side == CopySide.Local ? local : peer;

    private static void RequireDisk(CopyView copy, string parameter)
    {
        if (copy.Disk is not (DiskState.Inconsistent or DiskState.Outdated or DiskState.UpToDate))
        {
            throw new ArgumentException($"a copy without a disk has no data to compare (disk {copy.Disk})", parameter);
        }
    }
}
