namespace Ferry.Cluster.State;

/// <summary>The cluster's identity, made once by `ferry cluster init`, and its settings.</summary>
/// <param name="CaCertificatePem">The cluster authority's certificate, which every host certificate chains to.</param>
/// <param name="NPlusOneOff">Set when starts are admitted without N+1 (`ferry cluster set --n-plus-one off`); on by default.</param>
/// <param name="Leases">The lease timings every host uses, set when the cluster is made (null: the defaults).</param>
public sealed record ClusterInfo(Guid Id, string Name, string CaCertificatePem, DateTimeOffset CreatedAt, bool NPlusOneOff = false, Leases.LeaseTimings? Leases = null)
{
    public bool NPlusOne => !NPlusOneOff;

    /// <summary>
    /// The one set of lease timings of the cluster: a leader judges hosts by the lease they hold, so every host
    /// must use the same. Fixed when the cluster is made (changing it under running hosts would need both sets honoured at once).
    /// </summary>
    public Leases.LeaseTimings LeaseTimings => Leases ?? new();
}

/// <summary>Changes the cluster's settings; a setting not given stays as it is.</summary>
public sealed record SetClusterSettings(bool? NPlusOne) : ClusterCommand
{
    internal override Result<StateChange> Execute(ClusterState state)
    {
        if (state.Cluster is not { } cluster)
        {
            return ClusterErrors.NotInCluster;
        }

        var next = cluster with { NPlusOneOff = !(NPlusOne ?? cluster.NPlusOne) };
        return new StateChange(state with { Cluster = next }, $"N+1 admission {(next.NPlusOne ? "on: a start must leave room for any one host's loss" : "off: starts need only capacity")}");
    }
}
