namespace Ferry.Storage.Replication;

/// <summary>The outcome of an operator discarding one copy of a split volume.</summary>
/// <param name="Sync">The resync from the kept copy that carries the discard out.</param>
/// <param name="DiscardedGeneration">The discarded copy's current generation: every write in it is lost.</param>
/// <param name="DiscardedBlocks">Blocks the discarded copy changed since the copies diverged (its marked
/// blocks), or null when its changes cannot be counted (no shared bitmap generation) and all it held is replaced.</param>
public sealed record SplitBrainDiscard(SyncDecision Sync, ulong DiscardedGeneration, ulong? DiscardedBlocks);
