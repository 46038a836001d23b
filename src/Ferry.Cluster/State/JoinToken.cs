namespace Ferry.Cluster.State;

/// <summary>
/// A one-time permission to join. The state keeps only a hash of the secret, so reading the log does
/// not let anyone join.
/// </summary>
public sealed record JoinToken(string Id, string SecretHash, DateTimeOffset ExpiresAt, string? UsedBy);
