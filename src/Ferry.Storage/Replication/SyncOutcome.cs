namespace Ferry.Storage.Replication;

/// <summary>What two connecting copies do.</summary>
public enum SyncOutcome
{
    /// <summary>The copies hold the same data; they connect and replicate.</summary>
    NoSync,

    /// <summary>Copy the blocks marked in either copy's bitmap from the local copy to the peer.</summary>
    BitmapSyncLocalIsSource,

    /// <summary>Copy the blocks marked in either copy's bitmap from the peer to the local copy.</summary>
    BitmapSyncPeerIsSource,

    /// <summary>Copy every block from the local copy to the peer.</summary>
    FullSyncLocalIsSource,

    /// <summary>Copy every block from the peer to the local copy.</summary>
    FullSyncPeerIsSource,

    /// <summary>Both copies took writes the other lacks; they stay disconnected until an operator discards one.</summary>
    SplitBrain,

    /// <summary>The copies share no generation: not copies of the same data. They stay disconnected.</summary>
    Unrelated,

    /// <summary>The copy that would have to be the source has inconsistent data; they stay disconnected.</summary>
    NoConsistentSource,
}
