namespace Ferry.Cluster.State;

/// <summary>The cluster's identity: made once by `ferry cluster init`.</summary>
/// <param name="CaCertificatePem">The cluster authority's certificate, which every host certificate chains to.</param>
public sealed record ClusterInfo(Guid Id, string Name, string CaCertificatePem, DateTimeOffset CreatedAt);
