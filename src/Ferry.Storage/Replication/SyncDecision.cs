namespace Ferry.Storage.Replication;

/// <summary>
/// What two connecting copies do about their differences (<see cref="Decide"/>), by which rule, and a
/// one-line reason for <c>ferry volume show</c>. The reason speaks of "source" and "target", so the
/// decisions both ends reach are equal but for <see cref="Outcome"/>'s direction (<see cref="Mirror"/>).
/// </summary>
/// <param name="CommonGeneration">The newest generation both copies hold or descend from, 0 if none is known.
/// For a split brain it is where the copies diverged.</param>
public sealed partial record SyncDecision(SyncOutcome Outcome, SyncRule Rule, ulong CommonGeneration, string Reason)
{
    /// <summary>The copy data flows from, or null when nothing is synced.</summary>
    public CopySide? Source => Outcome switch
    {
        SyncOutcome.BitmapSyncLocalIsSource or SyncOutcome.FullSyncLocalIsSource => CopySide.Local,
        SyncOutcome.BitmapSyncPeerIsSource or SyncOutcome.FullSyncPeerIsSource => CopySide.Peer,
        _ => null,
    };

    public bool IsFullSync => Outcome is SyncOutcome.FullSyncLocalIsSource or SyncOutcome.FullSyncPeerIsSource;

    /// <summary>The same decision as the peer sees it.</summary>
    public SyncDecision Mirror() => this with
    {
        Outcome = Outcome switch
        {
            SyncOutcome.BitmapSyncLocalIsSource => SyncOutcome.BitmapSyncPeerIsSource,
            SyncOutcome.BitmapSyncPeerIsSource => SyncOutcome.BitmapSyncLocalIsSource,
            SyncOutcome.FullSyncLocalIsSource => SyncOutcome.FullSyncPeerIsSource,
            SyncOutcome.FullSyncPeerIsSource => SyncOutcome.FullSyncLocalIsSource,
            var undirected => undirected,
        },
    };

    internal static SyncDecision Sync(CopySide source, bool full, SyncRule rule, ulong common, string reason) => new(
        (source, full) switch
        {
            (CopySide.Local, false) => SyncOutcome.BitmapSyncLocalIsSource,
            (CopySide.Peer, false) => SyncOutcome.BitmapSyncPeerIsSource,
            (CopySide.Local, true) => SyncOutcome.FullSyncLocalIsSource,
            _ => SyncOutcome.FullSyncPeerIsSource,
        },
        rule,
        common,
        reason);

    internal static string Id(ulong generation) => generation.ToString("X16", System.Globalization.CultureInfo.InvariantCulture);
}
