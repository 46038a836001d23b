using Ferry.Hypervisor;

namespace Ferry.Cluster.State;

public enum VmDesiredState
{
    Stopped,
    Running,
}

/// <summary>A VM as the cluster wants it: its spec, whether it should run, and on which host.</summary>
/// <param name="Host">The one host the VM is placed on (null: not placed). A VM runs only where it is placed.</param>
/// <param name="Limits">How often the cluster restarts a crashed VM in place, and then moves it, before it gives up.</param>
/// <param name="Recovery">What the cluster has done about the VM's crashes since it was last asked to start it.</param>
/// <param name="Rules">Where it may run and what it waits for.</param>
/// <param name="Migration">The live migration under way, if one is: its source and target own the VM until it ends.</param>
/// <param name="LastMigration">How the last live migration ended.</param>
/// <param name="Home">The host it was moved away from by a drain, to which it goes back when that host is undrained.</param>
/// <param name="HealthyAt">When it answered its health check in its current run (null: not since it was last started or placed).</param>
/// <param name="StartAskedAt">When it was last asked to start or placed anew: what its wait for its dependencies counts from.</param>
public sealed record VmRecord(
    VmSpec Spec,
    VmDesiredState Desired,
    string? Host,
    DateTimeOffset DefinedAt,
    RestartLimits? Limits = null,
    VmRecovery? Recovery = null,
    VmRules? Rules = null,
    VmMigration? Migration = null,
    MigrationResult? LastMigration = null,
    string? Home = null,
    DateTimeOffset? HealthyAt = null,
    DateTimeOffset? StartAskedAt = null)
{
    public string Name => Spec.Name;

    public VmRules PlacementRules => Rules ?? VmRules.None;

    /// <summary>The VM with its migration ended in failure: it stays where it is placed.</summary>
    public VmRecord WithoutMigration(DateTimeOffset at, string reason) => Migration is not { } m ? this : this with
    {
        Migration = null,
        LastMigration = new MigrationResult(m.Id, m.Source, m.Target, false, at, at - m.Since, Error: reason),
    };

    public RestartLimits RestartLimits => Limits ?? RestartLimits.Default;

    public VmRecovery Recoveries => Recovery ?? VmRecovery.None;
}

/// <summary>Proxmox VE's max_restart and max_relocate: restarts on the VM's host after a crash, then moves to another host.</summary>
public sealed record RestartLimits(int MaxRestarts = 1, int MaxRelocations = 1)
{
    public const int Most = 100;

    public static RestartLimits Default { get; } = new();

    public FerryError? Invalid() => MaxRestarts is < 0 or > Most || MaxRelocations is < 0 or > Most
        ? FerryError.InvalidArgument($"restart and relocation limits are 0 to {Most}, not {MaxRestarts} and {MaxRelocations}")
        : null;
}

/// <summary>
/// The crashes the cluster has answered since the VM last ran healthy or was asked to start: restarts on
/// its current host, moves to another host (the one it left is avoided), and, once both limits are
/// spent, why it stopped trying. <paramref name="Grants"/> counts every restart granted, ever: a host
/// reports the count it started the VM at, so a crash at the current count is one not answered yet.
/// </summary>
public sealed record VmRecovery(int Restarts, int Relocations, string? Avoid, string? Error, long Grants = 0)
{
    public static VmRecovery None { get; } = new(0, 0, null, null);

    /// <summary>The budget whole again; the count of grants goes on.</summary>
    public VmRecovery Forgiven() => None with { Grants = Grants };
}

/// <summary>How a VM is placed, and what it waits for.</summary>
/// <param name="AntiAffinity">Its group of twins: two VMs of one group never run on one host.</param>
/// <param name="Prefer">Hosts it runs on first, in this order, when they can take it.</param>
/// <param name="DependsOn">VMs that must be healthy (running, and answering their health check if they have one) before it starts.</param>
/// <param name="DependencyTimeout">How long it waits for them before the cluster gives up on it (null: the default).</param>
public sealed record VmRules(string? AntiAffinity = null, IReadOnlyList<string>? Prefer = null, IReadOnlyList<string>? DependsOn = null, TimeSpan? DependencyTimeout = null)
{
    public static readonly TimeSpan DefaultDependencyTimeout = TimeSpan.FromMinutes(5);

    public static VmRules None { get; } = new();

    public IReadOnlyList<string> PreferredHosts => Prefer ?? [];

    public IReadOnlyList<string> Dependencies => DependsOn ?? [];

    public TimeSpan WaitForDependencies => DependencyTimeout ?? DefaultDependencyTimeout;

    public FerryError? Invalid()
    {
        if (AntiAffinity is { } group && !ResourceName.IsValid(group))
        {
            return FerryError.InvalidArgument($"invalid anti-affinity group '{group}': {ResourceName.Rule}");
        }

        if (DependencyTimeout is { } timeout && (timeout < TimeSpan.FromSeconds(1) || timeout > TimeSpan.FromDays(1)))
        {
            return FerryError.InvalidArgument($"a dependency timeout is 1 s to 1 day, not {timeout.TotalSeconds} s");
        }

        return PreferredHosts.FirstOrDefault(h => !ResourceName.IsValid(h)) is { } host
            ? FerryError.InvalidArgument($"invalid preferred host '{host}': {ResourceName.Rule}")
            : null;
    }
}
