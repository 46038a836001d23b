namespace Ferry.Cluster.Consensus;

/// <summary>
/// Raft's timings. A follower that hears nothing for a random time in [Lower, Upper] starts an election;
/// the leader sends heartbeats every Lower × HeartbeatThreshold. These defaults elect a new leader about
/// half a second after the old one dies and leave room for TLS handshakes on a real network.
/// </summary>
public sealed record ConsensusTiming
{
    public int LowerElectionTimeoutMs { get; init; } = 300;

    public int UpperElectionTimeoutMs { get; init; } = 600;

    public double HeartbeatThreshold { get; init; } = 0.3;

    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromMilliseconds(300);
}
