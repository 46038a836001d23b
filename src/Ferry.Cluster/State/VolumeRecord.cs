using System.Collections.Immutable;
using Ferry.Storage.Replication;
using Ferry.Storage.Replication.Wire;

namespace Ferry.Cluster.State;

/// <summary>A replicated volume: where its copies are, which one is primary, and the epochs granted.</summary>
/// <param name="Hosts">The hosts holding a copy, in the order they were given.</param>
/// <param name="Epoch">The highest epoch granted; every promotion takes the next one.</param>
/// <param name="Outdated">Copies marked Outdated by a primary that went on without them, by host.</param>
/// <param name="Seed">The generation id every copy was created with.</param>
public sealed record VolumeRecord(
    string Name,
    Guid Id,
    long SizeBytes,
    ImmutableList<string> Hosts,
    ReplicationProtocol Protocol,
    string? Primary,
    ulong Epoch,
    ImmutableDictionary<string, OutdatedMark> Outdated,
    ulong Seed);
