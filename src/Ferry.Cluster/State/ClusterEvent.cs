namespace Ferry.Cluster.State;

/// <summary>Something that changed in the cluster, with the ids it concerns, for `ferry cluster events`.</summary>
public sealed record ClusterEvent(long Sequence, DateTimeOffset At, string Kind, string Message, string? Host = null, string? Vm = null, string? Volume = null);
