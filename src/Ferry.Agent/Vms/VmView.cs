using Ferry.Hypervisor;

namespace Ferry.Agent.Vms;

/// <summary>A VM as the API and CLI show it.</summary>
/// <param name="Managed">The cluster runs it (start, stop and delete go through the cluster).</param>
/// <param name="Host">In a cluster: the host it is placed on.</param>
/// <param name="Waiting">In a cluster: why a VM that should run does not yet.</param>
/// <param name="Migration">In a cluster: the live migration under way.</param>
/// <param name="LastMigration">In a cluster: how the last live migration ended (downtime, duration, or why it failed).</param>
/// <param name="Rules">In a cluster: its anti-affinity group and preferred hosts.</param>
/// <param name="Home">In a cluster: the drained host it goes back to once that host is undrained.</param>
public sealed record VmView(
    string Name,
    VmState State,
    DesiredState Desired,
    int? Pid,
    Accelerator? Accelerator,
    DateTimeOffset? StartedAt,
    string? LastExit,
    VmSpec Spec,
    bool Managed = false,
    string? Host = null,
    string? Waiting = null,
    Ferry.Cluster.State.VmMigration? Migration = null,
    Ferry.Cluster.State.MigrationResult? LastMigration = null,
    Ferry.Cluster.State.VmRules? Rules = null,
    string? Home = null);
