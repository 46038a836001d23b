using System.Net;
using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using DotNext.Net.Cluster;
using DotNext.Net.Cluster.Consensus.Raft;
using DotNext.Net.Cluster.Consensus.Raft.StateMachine;
using Ferry.Cluster.Security;
using Ferry.Cluster.State;
using Microsoft.Extensions.Logging;
using RaftSslOptions = DotNext.Net.Security.SslOptions;

namespace Ferry.Cluster.Consensus;

/// <summary>How a host takes part in consensus.</summary>
/// <param name="Directory">Where the log, snapshots and member list live.</param>
/// <param name="ColdStart">Only the first host of a new cluster: it starts as a group of one. Others wait to be added.</param>
/// <param name="Witness">Votes but never stands for election (DotNext's standby node), so it never leads.</param>
public sealed record ConsensusNodeOptions(
    string Directory,
    IPEndPoint Listen,
    bool ColdStart,
    X509Certificate2 HostCertificate,
    X509Certificate2 Authority,
    ConsensusTiming Timing,
    bool Witness = false);

/// <summary>One member's view as the local host sees it.</summary>
public sealed record ConsensusMember(string Address, bool IsLeader, bool IsLocal, string Status);

/// <summary>
/// This host's member of the Raft group (DotNext): a write-ahead log flushed on every commit, the cluster
/// state machine with snapshots, TCP with mutual TLS against the cluster's authority only.
/// </summary>
public sealed class ConsensusNode : IAsyncDisposable
{
    private readonly RaftCluster _raft;
    private readonly WriteAheadLog _log;
    private readonly ClusterStateStore _store;
    private readonly MemberAddressStorage _members;

    private ConsensusNode(RaftCluster raft, WriteAheadLog log, ClusterStateStore store, MemberAddressStorage members)
    {
        _raft = raft;
        _log = log;
        _store = store;
        _members = members;
    }

    public ClusterState State => _store.Current;

    public bool IsLeader => _raft.Leader is { IsRemote: false };

    /// <summary>True until the group has added this host (a joining host waits in standby); always for a witness.</summary>
    public bool Standby => _raft.Standby;

    public EndPoint? Leader => _raft.Leader?.EndPoint;

    public long Term => _raft.Term;

    public long CommitIndex => _log.LastCommittedEntryIndex;

    public long AppliedIndex => _log.LastAppliedIndex;

    public IReadOnlyList<ConsensusMember> Members =>
        [.. _raft.Members.Select(m => new ConsensusMember(m.EndPoint.ToString() ?? "", m.IsLeader, !m.IsRemote, FerryJson.Name(m.Status)))];

    /// <summary>Raised after every applied command, on the thread that applied it.</summary>
    public event Action<ClusterState>? StateChanged
    {
        add => _store.Changed += value;
        remove => _store.Changed -= value;
    }

    public event Action<EndPoint?>? LeaderChanged;

    public static async Task<ConsensusNode> StartAsync(ConsensusNodeOptions options, ILoggerFactory loggers, CancellationToken ct)
    {
        System.IO.Directory.CreateDirectory(options.Directory);
        var store = new ClusterStateStore(new DirectoryInfo(Path.Combine(options.Directory, "snapshots")));

        // The log reads the snapshot's index when it is made: restore first.
        await store.RestoreAsync(ct).ConfigureAwait(false);
        var log = new WriteAheadLog(new WriteAheadLog.Options { Location = Path.Combine(options.Directory, "log") }, store);
        var members = new MemberAddressStorage(Path.Combine(options.Directory, "members.bin"));
        var timing = options.Timing;
        var configuration = new RaftCluster.TcpConfiguration(options.Listen)
        {
            // A host with a member list already skips the cold start, so repeating it after a restart is harmless.
            ColdStart = options.ColdStart,
            Standby = options.Witness,
            ConfigurationStorage = members,
            LowerElectionTimeout = timing.LowerElectionTimeoutMs,
            UpperElectionTimeout = timing.UpperElectionTimeoutMs,
            HeartbeatThreshold = timing.HeartbeatThreshold,
            RequestTimeout = timing.RequestTimeout,
            ConnectTimeout = timing.RequestTimeout,
            SslOptions = Tls(options.HostCertificate, options.Authority, () => store.Current),
            LoggerFactory = loggers,
        };
        var raft = new RaftCluster(configuration) { AuditTrail = log };
        var node = new ConsensusNode(raft, log, store, members);
        raft.LeaderChanged += (_, leader) => node.LeaderChanged?.Invoke(leader?.EndPoint);
        await raft.StartAsync(ct).ConfigureAwait(false);
        return node;
    }

    /// <summary>
    /// Appends <paramref name="command"/> to the log and returns its outcome once it is committed and applied
    /// here. Only on the leader; elsewhere it throws <see cref="NotLeaderException"/> and the caller forwards.
    /// </summary>
    public async Task<CommandOutcome> ProposeAsync(ClusterCommand command, CancellationToken ct)
    {
        await _raft.ReplicateAsync(JsonSerializer.SerializeToUtf8Bytes(command, FerryJson.Options), context: null, ct).ConfigureAwait(false);
        return State.Applied.FindLast(a => a.Id == command.Id)?.Outcome
            ?? throw new InvalidOperationException($"command {command.Id} was committed but its outcome is not in the state");
    }

    /// <summary>Waits until this host has applied everything committed before the call (a linearizable read).</summary>
    public async Task<ClusterState> ReadAsync(CancellationToken ct)
    {
        await _raft.ApplyReadBarrierAsync(ct).ConfigureAwait(false);
        return State;
    }

    public Task<RaftClusterMember> WaitForLeaderAsync(TimeSpan timeout, CancellationToken ct) => _raft.WaitForLeaderAsync(timeout, ct);

    /// <summary>Adds a host that started in standby: it is caught up first, then the new membership is committed.</summary>
    public Task<bool> AddMemberAsync(IPEndPoint address, CancellationToken ct) => _raft.AddMemberAsync(address, ct);

    public Task<bool> RemoveMemberAsync(IPEndPoint address, CancellationToken ct) => _raft.RemoveMemberAsync(address, ct);

    public bool IsMember(IPEndPoint address) => _raft.Members.Any(m => Equals(m.EndPoint, address));

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _raft.StopAsync(CancellationToken.None).ConfigureAwait(false);
        }
        finally
        {
            await _raft.DisposeAsync().ConfigureAwait(false);
            await _log.DisposeAsync().ConfigureAwait(false);
            await _store.DisposeAsync().ConfigureAwait(false);
            _members.Dispose();
        }
    }

    // Both ends present the host certificate and accept only peers chaining to the cluster authority whose
    // certificate the state records: a host of another cluster, without a certificate, or removed, cannot vote or append.
    private static RaftSslOptions Tls(X509Certificate2 certificate, X509Certificate2 authority, Func<ClusterState> state)
    {
        RemoteCertificateValidationCallback validate = (_, remote, _, _) =>
            remote is X509Certificate2 peer && PeerAdmission.Accepts(peer, authority, state());
        return new RaftSslOptions
        {
            ServerOptions = new SslServerAuthenticationOptions
            {
                ServerCertificate = certificate,
                ClientCertificateRequired = true,
                RemoteCertificateValidationCallback = validate,
                CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
                EnabledSslProtocols = SslProtocols.Tls13,
            },
            ClientOptions = new SslClientAuthenticationOptions
            {
                // Peers are checked against the authority by the callback; Raft addresses are IPs, not names.
                TargetHost = "ferry",
                ClientCertificates = [certificate],
                RemoteCertificateValidationCallback = validate,
                CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
                EnabledSslProtocols = SslProtocols.Tls13,
            },
        };
    }
}
