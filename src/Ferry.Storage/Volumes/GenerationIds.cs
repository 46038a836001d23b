namespace Ferry.Storage.Volumes;

/// <summary>
/// DRBD-style generation identifiers of a copy: the current data generation, the generation the dirty
/// bitmap is relative to, and two older ones. Compared between copies on connect to decide the
/// direction and kind of resync (used by replication; a single copy only carries them).
/// </summary>
public readonly record struct GenerationIds(ulong Current, ulong Bitmap, ulong History1, ulong History2);
