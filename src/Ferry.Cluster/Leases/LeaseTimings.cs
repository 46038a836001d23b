namespace Ferry.Cluster.Leases;

/// <summary>
/// How hosts hold their leases (DESIGN §5). A host renews every <see cref="Renewal"/>; it fences itself
/// (its VMs killed, its copies demoted) once <see cref="Lease"/> has passed since it sent the last
/// renewal the leader acknowledged; the leader judges a host failed once <see cref="Lease"/> +
/// <see cref="Margin"/> has passed since it received its last renewal, and a new leader waits as long
/// from its election before it judges anyone. Each side measures on its own clock only.
/// </summary>
/// <remarks>
/// Shorter than DESIGN §5's first numbers (renewal 1 s, lease 4 s, margin 2 s), which gave 10.8 s from the
/// leader's own host dying to its VM answering elsewhere: a new leader waits a whole lease and margin after
/// its election. Renewing twice a second keeps six tries per lease; the margin covers the watchdog's look
/// (every 0.1 s) and a kill, and an old leader stepping down (Raft's request timeout) - see docs/failover.md.
/// </remarks>
public sealed record LeaseTimings
{
    public TimeSpan Renewal { get; init; } = TimeSpan.FromMilliseconds(500);

    public TimeSpan Lease { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>Covers a host's self-fencing (killing QEMU, demoting copies) and the two clocks' rates drifting apart.</summary>
    public TimeSpan Margin { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>When a host that has not renewed must have stopped everything, after the send of its last acknowledged renewal.</summary>
    public TimeSpan SelfFenceAfter => Lease;

    /// <summary>When the leader may treat a silent host as failed, after its last renewal was received.</summary>
    public TimeSpan FailedAfter => Lease + Margin;

    /// <summary>How long a new leader listens before it judges anyone: every live host renews within it.</summary>
    public TimeSpan NewLeaderWait => Lease + Margin;

    /// <summary>
    /// The relations the safety argument rests on, checked when the agent starts: a renewal
    /// acknowledged at send time S is received at R ≥ S, so the host has fenced itself at S + Lease,
    /// before the leader's R + Lease + Margin; a host gets at least three tries per lease.
    /// </summary>
    public FerryError? Check()
    {
        if (Renewal <= TimeSpan.Zero || Lease <= TimeSpan.Zero || Margin <= TimeSpan.Zero)
        {
            return FerryError.InvalidArgument("lease timings must be positive");
        }

        if (Renewal * 3 > Lease)
        {
            return FerryError.InvalidArgument($"the lease ({Lease.TotalSeconds:0.###} s) must hold at least three renewals ({Renewal.TotalSeconds:0.###} s each)");
        }

        return Margin < FenceTime
            ? FerryError.InvalidArgument($"the margin ({Margin.TotalSeconds:0.###} s) must leave a host at least 0.5 s to fence itself")
            : null;
    }

    /// <summary>
    /// Whether this leader may renew a host that fences itself <paramref name="hostLease"/> after its last
    /// acknowledged renewal was sent (its own setting, which may differ from this host's): only if the host
    /// has fenced itself, with time to spare, before this leader would judge it failed, and before a new
    /// leader with these timings would judge anyone.
    /// </summary>
    public FerryError? Admits(TimeSpan hostLease) =>
        hostLease + FenceTime <= FailedAfter
            ? null
            : FerryError.InvalidArgument(
                $"its lease ({hostLease.TotalSeconds:0.###} s) is too long for this leader, which judges a host failed {FailedAfter.TotalSeconds:0.###} s after its last renewal: give every host the same lease timings");

    /// <summary>What a host needs at least, after its lease ran out, to have killed its VMs.</summary>
    private static readonly TimeSpan FenceTime = TimeSpan.FromMilliseconds(500);
}
