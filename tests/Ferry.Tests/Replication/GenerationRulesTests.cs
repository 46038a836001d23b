using CsCheck;
using Ferry.Storage.Replication;
using Ferry.Storage.Replication.Wire;
using Ferry.Storage.Volumes;

namespace Ferry.Tests.Replication;

public class GenerationRulesTests
{
    private const ulong F = 0xF0, H1 = 0x11, H2 = 0x12, X = 0x22, Y = 0x33, S = 0x66;

    [Fact]
    public void A_new_generation_makes_the_old_current_the_bitmap_generation() =>
        Assert.Equal(new GenerationIds(F, Y, X, H1), GenerationRules.StartNewGeneration(new(Y, 0, X, H1), F));

    [Fact]
    public void A_new_generation_keeps_a_bitmap_that_already_reaches_further_back() =>
        Assert.Equal(new GenerationIds(F, X, Y, H1), GenerationRules.StartNewGeneration(new(Y, X, H1, H2), F));

    [Fact]
    public void A_fresh_copy_forced_to_write_gets_its_first_generation() =>
        Assert.Equal(new GenerationIds(F, 0, 0, 0), GenerationRules.StartNewGeneration(GenerationRules.Fresh, F));

    [Theory]
    [InlineData(0UL, true)] // never shared, or forgotten
    [InlineData(Y, true)] // the peer may hold the current generation
    [InlineData(X, false)] // the copy started its current generation since it last shared one
    public void A_new_generation_is_needed_while_the_peer_may_hold_the_current_one(ulong lastShared, bool needed) =>
        Assert.Equal(needed, GenerationRules.NeedsNewGeneration(new(Y, X, H1, H2), lastShared));

    [Theory]
    [InlineData(0UL)]
    [InlineData(Y)]
    [InlineData(X)]
    [InlineData(H1)]
    [InlineData(H2)]
    public void New_ids_must_be_non_zero_and_unused(ulong id)
    {
        var ids = new GenerationIds(Y, X, H1, H2);
        Assert.Throws<ArgumentException>(() => GenerationRules.StartNewGeneration(ids, id));
        Assert.Throws<ArgumentException>(() => GenerationRules.BeginSyncAsSource(ids, id));
    }

    [Fact]
    public void A_resync_start_makes_the_target_current_at_the_sources_bitmap_generation()
    {
        var source = GenerationRules.BeginSyncAsSource(new(Y, 0, H1, H2), S);
        Assert.Equal(new GenerationIds(Y, S, H1, H2), source);
        Assert.Equal(new GenerationIds(S, 0, H1, H2), GenerationRules.BeginSyncAsTarget(source));

        source = GenerationRules.BeginSyncAsSource(new(Y, X, H1, H2), S);
        Assert.Equal(new GenerationIds(Y, X, H1, H2), source);
        Assert.Equal(new GenerationIds(X, 0, H1, H2), GenerationRules.BeginSyncAsTarget(source));
        Assert.Throws<ArgumentException>(() => GenerationRules.BeginSyncAsTarget(new(Y, 0, X, H1)));
    }

    [Fact]
    public void A_resync_end_moves_the_sync_id_to_history_on_both_copies()
    {
        var source = new GenerationIds(Y, S, X, H1);
        Assert.Equal(new GenerationIds(Y, 0, S, X), GenerationRules.FinishSyncAsSource(source));
        Assert.Equal(new GenerationIds(Y, 0, S, X), GenerationRules.FinishSyncAsTarget(source));
        Assert.Equal(new GenerationIds(Y, 0, X, H1), GenerationRules.FinishSyncAsSource(new(Y, 0, X, H1)));
    }

    // Any tuple, any target: a resync begun and finished by the rules leaves copies that need nothing more.
    [Fact]
    public void A_finished_resync_leaves_copies_that_compare_equal() =>
        Gen.Select(Gen.ULong[1, 1000], Gen.ULong[0, 1000], Gen.ULong[0, 1000], Gen.ULong[0, 1000], Gen.ULong[1001, ulong.MaxValue])
            .Sample((current, bitmap, h1, h2, syncId) =>
            {
                var source = GenerationRules.BeginSyncAsSource(new(current, bitmap, h1, h2), syncId);
                var target = GenerationRules.FinishSyncAsTarget(source);
                source = GenerationRules.FinishSyncAsSource(source);
                return source == target
                    && SyncDecision.Decide(View(source), View(target)).Outcome == SyncOutcome.NoSync;
            });

    // Ids only move towards the history end: the old current id stays in the tuple, so a peer that still
    // holds it is recognised as behind, and the copy that moved on as the source.
    [Fact]
    public void A_new_generation_keeps_the_old_one_in_reach() =>
        Gen.Select(Gen.ULong[1, 1000], Gen.ULong[0, 1000], Gen.ULong[0, 1000], Gen.ULong[0, 1000], Gen.ULong[1001, ulong.MaxValue])
            .Sample((current, bitmap, h1, h2, fresh) =>
            {
                var ids = GenerationRules.StartNewGeneration(new(current, bitmap, h1, h2), fresh);
                return ids.Current == fresh && (ids.Bitmap == current || ids.History1 == current)
                    && SyncDecision.Decide(View(new(current, 0, h1, h2)), View(ids)).Source == CopySide.Peer;
            });

    private static CopyView View(GenerationIds ids) => new(ids, DiskState.UpToDate, false, false, 0);
}
