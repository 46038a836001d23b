using Ferry.Storage.Replication;
using Ferry.Storage.Replication.Wire;
using Ferry.Storage.Volumes;

namespace Ferry.Tests.Replication;

public class SyncDecisionTests
{
    // Generation ids by name; their numeric order matters only where a tie-break compares them (Z > Y).
    private const ulong H = 0x11, X = 0x22, Y = 0x33, Z = 0x44, W = 0x55, S = 0x66;

    private static CopyView Copy(
        ulong current, ulong bitmap = 0, ulong history1 = 0, ulong history2 = 0, DiskState disk = DiskState.UpToDate,
        bool primary = false, bool crashed = false, ulong dirty = 0) =>
        new(new GenerationIds(current, bitmap, history1, history2), disk, primary, crashed, dirty);

    private static readonly CopyView FreshCopy = Copy(0, disk: DiskState.Inconsistent);

    public static TheoryData<string, CopyView, CopyView, SyncOutcome, SyncRule, ulong> Scenarios => new()
    {
        { "clean reconnect", Copy(Y, 0, X), Copy(Y, 0, X), SyncOutcome.NoSync, SyncRule.SameGeneration, Y },
        { "secondary missed writes", Copy(X, 0, H), Copy(Y, X, H, primary: true, dirty: 5), SyncOutcome.BitmapSyncPeerIsSource, SyncRule.MissedWrites, X },
        { "primary crashed and came back", Copy(X, crashed: true, dirty: 3), Copy(X), SyncOutcome.BitmapSyncLocalIsSource, SyncRule.CrashedPrimary, X },
        { "both went down, the primary with writes in flight", Copy(X, crashed: true, dirty: 3), Copy(X, crashed: true), SyncOutcome.BitmapSyncLocalIsSource, SyncRule.CrashedPrimary, X },
        { "primary crashed, peer took over and wrote nothing yet", Copy(X, crashed: true, dirty: 3), Copy(X, primary: true), SyncOutcome.BitmapSyncPeerIsSource, SyncRule.CrashedPrimary, X },
        { "primary crashed and was outdated meanwhile", Copy(X, disk: DiskState.Outdated, crashed: true, dirty: 3), Copy(X), SyncOutcome.BitmapSyncPeerIsSource, SyncRule.CrashedPrimary, X },
        { "primary crashed, peer took over and wrote", Copy(X, 0, H, crashed: true, dirty: 3), Copy(Y, X, H, primary: true, dirty: 7), SyncOutcome.BitmapSyncPeerIsSource, SyncRule.MissedWrites, X },
        { "both crashed as primary, indistinguishable", Copy(X, crashed: true, dirty: 2), Copy(X, crashed: true, dirty: 2), SyncOutcome.SplitBrain, SyncRule.AmbiguousCrash, X },
        { "both crashed as primary with nothing in flight", Copy(X, crashed: true), Copy(X, crashed: true), SyncOutcome.NoSync, SyncRule.SameGeneration, X },
        { "outdated copy that missed nothing", Copy(X, disk: DiskState.Outdated), Copy(X, primary: true), SyncOutcome.NoSync, SyncRule.SameGeneration, X },
        { "both promoted while apart and both wrote", Copy(Y, X, H, dirty: 4), Copy(Z, X, H, dirty: 9), SyncOutcome.SplitBrain, SyncRule.SplitBrainSharedBitmap, X },
        { "one side promoted but wrote nothing", Copy(X, 0, H, primary: true), Copy(Y, X, H, dirty: 2), SyncOutcome.BitmapSyncPeerIsSource, SyncRule.MissedWrites, X },
        { "one side started a generation but wrote nothing", Copy(Z, X, H), Copy(Y, X, H, dirty: 6), SyncOutcome.BitmapSyncPeerIsSource, SyncRule.SplitBrainNoChanges, X },
        { "both started generations, neither wrote", Copy(Z, X, H), Copy(Y, X, H), SyncOutcome.BitmapSyncLocalIsSource, SyncRule.SplitBrainNoChanges, X },
        { "no automatic resolution towards an inconsistent copy", Copy(Z, X), Copy(Y, X, disk: DiskState.Inconsistent, dirty: 6), SyncOutcome.SplitBrain, SyncRule.SplitBrainSharedBitmap, X },
        { "split brain sharing only history", Copy(Z, W, X), Copy(Y, S, X), SyncOutcome.SplitBrain, SyncRule.SplitBrainSharedHistory, X },
        { "fresh copy joining", FreshCopy, Copy(X, 0, H), SyncOutcome.FullSyncPeerIsSource, SyncRule.FreshCopy, 0UL },
        { "two fresh copies", FreshCopy, FreshCopy, SyncOutcome.NoSync, SyncRule.BothFresh, 0UL },
        { "fresh copy and an inconsistent one", FreshCopy, Copy(X, disk: DiskState.Inconsistent), SyncOutcome.NoConsistentSource, SyncRule.NoConsistentSource, 0UL },
        { "unrelated volumes", Copy(Y, X, H), Copy(Z, W), SyncOutcome.Unrelated, SyncRule.Unrelated, 0UL },
        { "copy left more than a generation behind", Copy(X), Copy(Y, 0, X, H), SyncOutcome.FullSyncPeerIsSource, SyncRule.OlderGeneration, X },
        { "interrupted resync resumes", Copy(X, 0, H, disk: DiskState.Inconsistent), Copy(Y, X, H), SyncOutcome.BitmapSyncPeerIsSource, SyncRule.MissedWrites, X },
        { "resync end not recorded by the source", Copy(Y, S, X, H), Copy(Y, 0, S, X), SyncOutcome.BitmapSyncLocalIsSource, SyncRule.ResyncNotFinished, Y },
        { "resync end not recorded, and the source wrote since", Copy(W, S, Y, X, dirty: 3), Copy(Y, 0, S, X), SyncOutcome.FullSyncLocalIsSource, SyncRule.OlderGeneration, Y },
        { "resync end not recorded, and the target moved on", Copy(Y, S, X), Copy(Z, Y, S, X, dirty: 2), SyncOutcome.BitmapSyncPeerIsSource, SyncRule.MissedWrites, Y },
        { "resync start not recorded by the target", Copy(Y, S, X, H), Copy(X, 0, H), SyncOutcome.FullSyncLocalIsSource, SyncRule.OlderGeneration, X },
        { "same generation, one copy inconsistent", Copy(X), Copy(X, disk: DiskState.Inconsistent), SyncOutcome.FullSyncLocalIsSource, SyncRule.InconsistentTarget, X },
        { "same generation, both inconsistent", Copy(X, disk: DiskState.Inconsistent), Copy(X, disk: DiskState.Inconsistent), SyncOutcome.NoConsistentSource, SyncRule.NoConsistentSource, X },
        { "ids name an inconsistent copy as source", Copy(Y, X, disk: DiskState.Inconsistent), Copy(X), SyncOutcome.FullSyncPeerIsSource, SyncRule.InconsistentSource, X },
    };

    [Theory]
    [MemberData(nameof(Scenarios))]
    public void Scenario(string name, CopyView local, CopyView peer, SyncOutcome outcome, SyncRule rule, ulong common)
    {
        var decision = SyncDecision.Decide(local, peer);
        Assert.True(
            (outcome, rule, common) == (decision.Outcome, decision.Rule, decision.CommonGeneration),
            $"{name}: expected {outcome} by {rule} from {common:X}, got {decision.Outcome} by {decision.Rule} from {decision.CommonGeneration:X}: {decision.Reason}");
        Assert.Equal(decision.Mirror(), SyncDecision.Decide(peer, local));
        Assert.False(string.IsNullOrWhiteSpace(decision.Reason));
    }

    [Fact]
    public void A_copy_without_a_disk_is_not_compared() =>
        Assert.Throws<ArgumentException>(() => SyncDecision.Decide(Copy(X, disk: DiskState.Diskless), Copy(X)));

    [Fact]
    public void Source_and_kind_follow_the_outcome()
    {
        var decision = SyncDecision.Decide(FreshCopy, Copy(X));
        Assert.Equal(CopySide.Peer, decision.Source);
        Assert.True(decision.IsFullSync);
        Assert.Equal(CopySide.Local, decision.Mirror().Source);
        Assert.Null(SyncDecision.Decide(Copy(X), Copy(X)).Source);
    }

    [Fact]
    public void Discarding_after_a_shared_bitmap_is_a_bitmap_sync_that_counts_the_lost_blocks()
    {
        var local = Copy(Y, X, H, dirty: 4);
        var peer = Copy(Z, X, H, dirty: 9);
        var discard = SplitBrainResolution.Discard(local, peer, CopySide.Local).Value;
        Assert.Equal(SyncOutcome.BitmapSyncPeerIsSource, discard.Sync.Outcome);
        Assert.Equal(SyncRule.ManualDiscard, discard.Sync.Rule);
        Assert.Equal(X, discard.Sync.CommonGeneration);
        Assert.Equal(Y, discard.DiscardedGeneration);
        Assert.Equal(4UL, discard.DiscardedBlocks);
        Assert.Contains("4 marked blocks", discard.Sync.Reason, StringComparison.Ordinal);

        var mirrored = SplitBrainResolution.Discard(peer, local, CopySide.Peer).Value;
        Assert.Equal(discard with { Sync = discard.Sync.Mirror() }, mirrored);
    }

    [Theory]
    [InlineData(Z, W, X, Y, S, X)] // split brain sharing only history
    [InlineData(Y, X, H, Z, W, 0UL)] // unrelated
    public void Discarding_without_a_shared_bitmap_is_a_full_sync(ulong c1, ulong b1, ulong h1, ulong c2, ulong b2, ulong h2)
    {
        var discard = SplitBrainResolution.Discard(Copy(c1, b1, h1, dirty: 3), Copy(c2, b2, h2), CopySide.Peer).Value;
        Assert.Equal(SyncOutcome.FullSyncLocalIsSource, discard.Sync.Outcome);
        Assert.Equal(c2, discard.DiscardedGeneration);
        Assert.Null(discard.DiscardedBlocks);
    }

    [Fact]
    public void Discarding_is_refused_when_the_copies_are_not_split()
    {
        var result = SplitBrainResolution.Discard(Copy(X), Copy(Y, X, dirty: 1), CopySide.Peer);
        Assert.Equal(ErrorCode.WrongState, result.Error?.Code);
        Assert.Contains("not split", result.Error!.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Discarding_is_refused_when_the_kept_copy_is_inconsistent()
    {
        var result = SplitBrainResolution.Discard(Copy(Y, X, dirty: 2), Copy(Z, X, disk: DiskState.Inconsistent, dirty: 2), CopySide.Local);
        Assert.Equal(ErrorCode.WrongState, result.Error?.Code);
    }

    [Fact]
    public void Automatic_resolution_needs_a_shared_bitmap_and_a_copy_without_marks()
    {
        Assert.Null(SplitBrainResolution.TryAutoResolve(Copy(Y, X, dirty: 1), Copy(Z, X, dirty: 1)));
        Assert.Null(SplitBrainResolution.TryAutoResolve(Copy(Y, W), Copy(Z, X)));
        Assert.Null(SplitBrainResolution.TryAutoResolve(Copy(Y), Copy(Z)));
        var resolved = SplitBrainResolution.TryAutoResolve(Copy(Y, X, dirty: 1), Copy(Z, X));
        Assert.Equal(SyncOutcome.BitmapSyncLocalIsSource, resolved?.Outcome);
        Assert.Contains("nothing is discarded", resolved!.Reason, StringComparison.Ordinal);
    }
}
