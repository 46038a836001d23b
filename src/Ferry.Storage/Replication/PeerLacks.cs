using Ferry.Storage.Volumes;

namespace Ferry.Storage.Replication;

/// <summary>
/// What one peer lacks, known block by block while this copy has stayed primary since the peer was last
/// in step: every block that a write it did not get touched, relative to the generation the peer holds
/// (<see cref="Generation"/>). The shared dirty bitmap marks these blocks too, with every other peer's;
/// a peer that comes back holding that generation is resynced from these marks alone, not from what
/// another copy, away longer, also needs. Kept in memory only: after a restart, or when the peer comes
/// back with another generation, the shared bitmap and the generation rules decide as before.
/// </summary>
internal sealed class PeerLacks(ulong generation, DirtyBitmap marks)
{
    /// <summary>The generation id the peer holds; it takes the source's bitmap id once a resync from these marks begins.</summary>
    public ulong Generation { get; set; } = generation;

    public DirtyBitmap Marks { get; } = marks;
}
