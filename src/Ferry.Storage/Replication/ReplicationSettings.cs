using Ferry.Storage.Replication.Wire;

namespace Ferry.Storage.Replication;

/// <summary>Another host holding a copy of the volume, and where its agent accepts replication links (host:port).</summary>
public sealed record PeerAddress(string Host, string Address);

/// <summary>How a volume's copy on this host replicates: the protocol, the peers, and the role it should have.</summary>
public sealed record ReplicationSettings
{
    public ReplicationProtocol Protocol { get; init; } = ReplicationProtocol.C;

    public IReadOnlyList<PeerAddress> Peers { get; init; } = [];

    public CopyRole Role { get; init; } = CopyRole.Primary;

    /// <summary>A primary does not connect while set (an operator's disconnect); its peers are outdated as for a lost link.</summary>
    public bool Disconnected { get; init; }

    /// <summary>Compare block checksums during a resync and skip the blocks both copies already hold.</summary>
    public bool ChecksumResync { get; init; }

    /// <summary>The most a resync may send per second (0: no limit); application I/O is favoured either way.</summary>
    public long ResyncRateLimit { get; init; }

    /// <summary>
    /// This copy may be primary beside its one peer for a live migration's handoff (protocol C only): as
    /// primary it takes the other primary's link, as secondary it may be promoted with <c>--dual</c>.
    /// </summary>
    public bool AllowTwoPrimaries { get; init; }

    /// <summary>The cluster created this copy and sets its peers and role; the host's own commands leave it alone.</summary>
    public bool Managed { get; init; }

    public static ReplicationSettings StandAlone { get; } = new();
}
