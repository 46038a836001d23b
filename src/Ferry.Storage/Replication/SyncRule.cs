namespace Ferry.Storage.Replication;

/// <summary>
/// Which rule of the decision table produced a <see cref="SyncDecision"/> (DRBD logs its "rule" too).
/// Rules name no side, so a decision and its mirror on the peer carry the same rule.
/// </summary>
public enum SyncRule
{
    /// <summary>Neither copy ever held data.</summary>
    BothFresh,

    /// <summary>One copy never held data: it receives every block.</summary>
    FreshCopy,

    /// <summary>Same current generation and nothing marked that could differ.</summary>
    SameGeneration,

    /// <summary>Same current generation but one copy is Inconsistent: it receives every block.</summary>
    InconsistentTarget,

    /// <summary>Same current generation, and the source's last resync ended without it recording the end.</summary>
    ResyncNotFinished,

    /// <summary>Same current generation, and a copy stopped while primary: its activity-log extents are resynced.</summary>
    CrashedPrimary,

    /// <summary>One copy still holds the generation the other's bitmap starts from: it missed the other's writes.</summary>
    MissedWrites,

    /// <summary>One copy holds a generation only in the other's history: the bitmap does not reach back that far.</summary>
    OlderGeneration,

    /// <summary>The ids point at an Inconsistent copy as source; the consistent copy is the source of a full sync instead.</summary>
    InconsistentSource,

    /// <summary>Both copies moved on from the same generation, but one provably wrote nothing since: resolved automatically.</summary>
    SplitBrainNoChanges,

    /// <summary>Both copies wrote since the generation their bitmaps share; a discard is resolved with a bitmap sync.</summary>
    SplitBrainSharedBitmap,

    /// <summary>Both copies wrote since a generation found only in their histories; a discard needs a full sync.</summary>
    SplitBrainSharedHistory,

    /// <summary>Same generation, both copies crashed as primary with the same marks: nothing orders them.</summary>
    AmbiguousCrash,

    /// <summary>No generation in common.</summary>
    Unrelated,

    /// <summary>No copy with consistent data can be the source.</summary>
    NoConsistentSource,

    /// <summary>An operator discarded one copy's data.</summary>
    ManualDiscard,
}
