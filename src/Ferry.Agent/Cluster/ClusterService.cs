using System.Net;
using System.Security.Cryptography.X509Certificates;
using DotNext.Net.Cluster.Consensus.Raft;
using Ferry.Agent.Api;
using Ferry.Cluster.Consensus;
using Ferry.Cluster.Reconcile;
using Ferry.Cluster.Security;
using Ferry.Cluster.State;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Ferry.Agent.Cluster;

/// <summary>
/// This host's membership of its cluster: creating or joining one, the consensus node, and commands
/// proposed from here (forwarded to the leader when this host is not it). A host that is in no cluster
/// runs on its own as before.
/// </summary>
internal sealed class ClusterService(AgentOptions options, TimeProvider time, ILoggerFactory loggers) : IHostedService, IAsyncDisposable
{
    public static readonly TimeSpan DefaultTokenLifetime = TimeSpan.FromMinutes(60);

    /// <summary>How long a command waits for a leader (an election, a partition healing) before it says there is none.</summary>
    private static readonly TimeSpan LeaderWait = TimeSpan.FromSeconds(10);

    private readonly ClusterFiles _files = new(options.DataDirectory);
    private readonly ILogger _log = loggers.CreateLogger("Ferry.Cluster");
    private readonly SemaphoreSlim _membership = new(1, 1);
    private readonly CancellationTokenSource _stopping = new();
    private ConsensusNode? _node;
    private ClusterCredentials? _credentials;
    private PeerClient? _peers;
    private ClusterIdentity? _identity;
    private bool _seenSelf;
    private Task _removal = Task.CompletedTask;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public ConsensusNode? Node => _node;

    /// <summary>The state as this host has applied it (null while in no cluster).</summary>
    public ClusterState? State => _node?.State;

    /// <summary>The host certificate for the peer API's TLS (null while in no cluster).</summary>
    public X509Certificate2? HostCertificate => _credentials?.Host;

    /// <summary>The cluster's authority certificate (null while in no cluster).</summary>
    public X509Certificate2? AuthorityCertificate => _credentials?.Authority;

    public bool Accepts(X509Certificate2 peer) => _credentials is { } c && PeerAdmission.Accepts(peer, c.Authority, _node?.State);

    public string? AuthorityPem => _credentials?.Authority.ExportCertificatePem();

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (_files.Exists)
        {
            var identity = _files.ReadIdentity();
            await StartNodeAsync(identity, _files.ReadCredentials(), cancellationToken).ConfigureAwait(false);
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        try
        {
            await _removal.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // The agent stops before a removal it noticed was handled; the node stops below all the same.
        }

        await StopNodeAsync().ConfigureAwait(false);
    }

    /// <summary>`ferry cluster init`: a new cluster, its authority, and this host as its first member and leader.</summary>
    public async Task<Result<ClusterStatusView>> InitAsync(InitClusterRequest request, CancellationToken ct)
    {
        if (!ResourceName.IsValid(request.Name))
        {
            return FerryError.InvalidArgument($"invalid cluster name '{request.Name}': {ResourceName.Rule}");
        }

        if (HostName() is { } invalid)
        {
            return invalid;
        }

        await _membership.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_identity is { } existing)
            {
                return FerryError.Conflict($"this host is already in cluster '{existing.ClusterName}'");
            }

            var now = time.GetUtcNow();
            using var authority = ClusterAuthority.Create(request.Name, now);
            var (key, csr) = ClusterAuthority.CreateRequest(options.HostName);
            using (key)
            {
                var certificate = ClusterAuthority.Issue(authority, csr, options.HostName, now).Value;
                var identity = new ClusterIdentity(Guid.NewGuid(), request.Name, options.HostName, HostRole.Member, First: true, now);
                await _files.WriteAsync(identity, authority.ExportCertificatePem(), KeyPem(authority), certificate, key, ct).ConfigureAwait(false);
                await StartNodeAsync(identity, _files.ReadCredentials(), ct).ConfigureAwait(false);
                var node = _node!;
                await node.WaitForLeaderAsync(LeaderWait, ct).ConfigureAwait(false);
                var first = LocalHost(HostRole.Member, now) with { Certificate = ClusterAuthority.Fingerprint(certificate) };
                var outcome = await node.ProposeAsync(
                    new InitializeCluster(identity.ClusterId, request.Name, authority.ExportCertificatePem(), first, request.Leases) { At = now }, ct).ConfigureAwait(false);
                if (outcome.Error is { } error)
                {
                    return error;
                }

                Log.ClusterCreated(_log, request.Name, identity.ClusterId, options.HostName);
                return ClusterViews.Status(node.State, node, options.HostName);
            }
        }
        finally
        {
            _membership.Release();
        }
    }

    /// <summary>`ferry cluster join-token`: a one-time token that lets one host join, valid for <paramref name="lifetime"/>.</summary>
    public async Task<Result<JoinTokenView>> IssueTokenAsync(TimeSpan lifetime, CancellationToken ct)
    {
        if (_credentials is not { } credentials)
        {
            return ClusterErrors.NotInCluster;
        }

        var token = JoinTokenText.New(credentials.Fingerprint);
        var now = time.GetUtcNow();
        var outcome = await ProposeAsync(new IssueJoinToken(token.Id, token.SecretHash, now + lifetime) { At = now }, ct).ConfigureAwait(false);
        return ErrorOf(outcome) is { } error ? error : new JoinTokenView(token.ToString(), now + lifetime);
    }

    /// <summary>
    /// `ferry node join`: checks that the host at <see cref="JoinClusterRequest.Address"/> holds the authority the
    /// token names, gets this host's certificate from it, starts consensus in standby and asks to be added.
    /// </summary>
    public async Task<Result<ClusterStatusView>> JoinAsync(JoinClusterRequest request, CancellationToken ct)
    {
        if (!JoinTokenText.Parse(request.Token).TryGetValue(out var token, out var malformed))
        {
            return malformed;
        }

        if (HostName() is { } invalid)
        {
            return invalid;
        }

        if (!Uri.TryCreate($"https://{request.Address}/", UriKind.Absolute, out var member))
        {
            return FerryError.InvalidArgument($"invalid address '{request.Address}': give HOST:PORT of a member's peer API");
        }

        await _membership.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_identity is { } existing)
            {
                return FerryError.Conflict($"this host is already in cluster '{existing.ClusterName}'");
            }

            using var unverified = PeerClient.Unverified();
            if (!(await unverified.SendAsync<AuthorityView>(HttpMethod.Get, new Uri(member, "peer/authority"), null, ct).ConfigureAwait(false)).TryGetValue(out var offered, out var unreachable))
            {
                return unreachable;
            }

            using var authority = X509Certificate2.CreateFromPem(offered.CertificatePem);
            if (ClusterAuthority.Fingerprint(authority) != token.AuthorityFingerprint)
            {
                return FerryError.InvalidArgument(
                    $"the host at {request.Address} belongs to another cluster: its authority's fingerprint is {ClusterAuthority.Fingerprint(authority)}, the token names {token.AuthorityFingerprint}");
            }

            var role = request.Witness ? HostRole.Witness : HostRole.Member;
            ClusterIdentity identity;
            var (key, csr) = ClusterAuthority.CreateRequest(options.HostName);
            using (key)
            {
                using var joining = PeerClient.ForJoining(authority);
                var joinRequest = new PeerJoinRequest(token.Id, token.Secret, LocalHost(role, time.GetUtcNow()), csr);
                if (!(await joining.SendAsync<PeerJoinResponse>(HttpMethod.Post, new Uri(member, "peer/join"), PeerClient.Body(joinRequest), ct).ConfigureAwait(false)).TryGetValue(out var joined, out var refused))
                {
                    return refused;
                }

                identity = new ClusterIdentity(joined.ClusterId, joined.ClusterName, options.HostName, role, First: false, joined.JoinedAt);
                await _files.WriteAsync(identity, joined.AuthorityPem, joined.AuthorityKeyPem, joined.CertificatePem, key, ct).ConfigureAwait(false);
            }

            await StartNodeAsync(identity, _files.ReadCredentials(), ct).ConfigureAwait(false);
            var admitted = await _peers!.SendAsync<HostStatusView>(HttpMethod.Post, new Uri(member, "peer/members"), PeerClient.Body(new PeerHostRequest(options.HostName)), ct).ConfigureAwait(false);
            if (admitted.Error is { } notAdmitted)
            {
                return new FerryError(notAdmitted.Code, $"joined the cluster's state but not its consensus group yet: {notAdmitted.Message}; the leader retries when this host is reachable");
            }

            // A witness stays in standby for good (it never stands for election); a member leaves it once added.
            await WaitUntilAsync(s => s.Host(options.HostName) is not null && (role == HostRole.Witness || !_node!.Standby) && _node!.Leader is not null, ct).ConfigureAwait(false);
            Log.HostJoined(_log, options.HostName, identity.ClusterName);
            return await StatusAsync(local: false, ct).ConfigureAwait(false);
        }
        finally
        {
            _membership.Release();
        }
    }

    /// <summary>A joining host's request, answered by any member: the token is used up through the log, then the certificate is signed.</summary>
    public async Task<Result<PeerJoinResponse>> AnswerJoinAsync(PeerJoinRequest request, CancellationToken ct)
    {
        if (_credentials is not { } credentials || _node is not { } node || node.State.Cluster is not { } cluster)
        {
            return ClusterErrors.NotInCluster;
        }

        if (!IPEndPoint.TryParse(request.Host.ConsensusAddress, out var consensus))
        {
            return FerryError.InvalidArgument($"invalid consensus address '{request.Host.ConsensusAddress}': give IP:PORT");
        }

        // Checked here first so a bad token costs no log entry; the state machine checks again, for good.
        var now = time.GetUtcNow();
        if (JoinTokenCheck.Refusal(node.State, request.TokenId, JoinTokenText.Hash(request.Secret), now) is { } refused)
        {
            Log.JoinRefused(_log, request.Host.Name, refused.Message);
            return refused;
        }

        // Signed first, so the state records the one certificate peers will accept from the host; unused if the join is refused.
        if (!ClusterAuthority.Issue(credentials.Authority, request.CertificateRequestPem, request.Host.Name, now).TryGetValue(out var certificate, out var badRequest))
        {
            return badRequest;
        }

        var host = request.Host with { ConsensusAddress = consensus.ToString(), JoinedAt = now, Certificate = ClusterAuthority.Fingerprint(certificate) };
        if (ErrorOf(await ProposeAsync(new JoinHost(request.TokenId, JoinTokenText.Hash(request.Secret), host) { At = now }, ct).ConfigureAwait(false)) is { } error)
        {
            Log.JoinRefused(_log, request.Host.Name, error.Message);
            return error;
        }

        // The joining host calls this host next with its new certificate: have the join applied here first.
        using (var applied = CancellationTokenSource.CreateLinkedTokenSource(ct))
        {
            applied.CancelAfter(LeaderWait);
            try
            {
                await WaitUntilAsync(s => s.Host(host.Name)?.Certificate == host.Certificate, applied.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                // Committed but not applied here yet: the joining host's next call is refused and reports it.
            }
        }

        return new PeerJoinResponse(cluster.Id, cluster.Name, host.JoinedAt, certificate, credentials.Authority.ExportCertificatePem(), KeyPem(credentials.Authority));
    }

    /// <summary>On the leader: adds a host that joined the state to the consensus group (caught up first).</summary>
    public async Task<Result<HostStatusView>> AdmitAsync(PeerHostRequest request, CancellationToken ct)
    {
        if (_node is not { } node)
        {
            return ClusterErrors.NotInCluster;
        }

        return await OnLeaderAsync("peer/members", () => PeerClient.Body(request), ct => AdmitOnLeaderAsync(node, request, ct), ct).ConfigureAwait(false);
    }

    private async Task<Result<HostStatusView>> AdmitOnLeaderAsync(ConsensusNode node, PeerHostRequest request, CancellationToken ct)
    {
        if (node.State.Host(request.Host) is not { } host)
        {
            return FerryError.NotFound($"no host named '{request.Host}' in the cluster: it must join with a token first");
        }

        var address = IPEndPoint.Parse(host.ConsensusAddress);
        if (!node.IsMember(address) && !await node.AddMemberAsync(address, ct).ConfigureAwait(false))
        {
            return FerryError.Unavailable($"host '{host.Name}' could not be added to the consensus group: it did not catch up from {address}");
        }

        return ClusterViews.Status(node.State, node, options.HostName).Hosts.First(h => h.Name == host.Name);
    }

    /// <summary>`ferry node fence-agent`: sets or removes the fence agent of a host; answers with the cluster's status.</summary>
    public async Task<Result<ClusterStatusView>> SetFenceAgentAsync(string host, FenceAgent? agent, CancellationToken ct)
    {
        if (ErrorOf(await ProposeAsync(new SetFenceAgent(host, agent) { At = time.GetUtcNow() }, ct).ConfigureAwait(false)) is { } error)
        {
            return error;
        }

        return await StatusAsync(local: false, ct).ConfigureAwait(false);
    }

    /// <summary>`ferry node drain` and `undrain`: puts a host in maintenance or takes it out; answers with the cluster's status.</summary>
    public async Task<Result<ClusterStatusView>> SetMaintenanceAsync(string host, bool on, CancellationToken ct)
    {
        if (ErrorOf(await ProposeAsync(new SetMaintenance(host, on) { At = time.GetUtcNow() }, ct).ConfigureAwait(false)) is { } error)
        {
            return error;
        }

        return await StatusAsync(local: false, ct).ConfigureAwait(false);
    }

    /// <summary>`ferry cluster set`: changes the cluster's settings; answers with the cluster's status.</summary>
    public async Task<Result<ClusterStatusView>> SetSettingsAsync(ClusterSettingsRequest request, CancellationToken ct)
    {
        if (ErrorOf(await ProposeAsync(new SetClusterSettings(request.NPlusOne) { At = time.GetUtcNow() }, ct).ConfigureAwait(false)) is { } error)
        {
            return error;
        }

        return await StatusAsync(local: false, ct).ConfigureAwait(false);
    }

    /// <summary>`ferry cluster verify`: what puts the cluster at risk now.</summary>
    public Result<IReadOnlyList<Risk>> Verify() =>
        _node is { } node ? Result<IReadOnlyList<Risk>>.Ok(ClusterVerify.Risks(node.State)) : ClusterErrors.NotInCluster;

    /// <summary>On the leader: `ferry node remove`. The state forgets the host first (refusable), then the consensus group.</summary>
    public async Task<Result<ClusterStatusView>> RemoveAsync(PeerHostRequest request, CancellationToken ct)
    {
        if (_node is not { } node)
        {
            return ClusterErrors.NotInCluster;
        }

        return await OnLeaderAsync("peer/remove", () => PeerClient.Body(request), ct => RemoveOnLeaderAsync(node, request, ct), ct).ConfigureAwait(false);
    }

    private async Task<Result<ClusterStatusView>> RemoveOnLeaderAsync(ConsensusNode node, PeerHostRequest request, CancellationToken ct)
    {
        var address = node.State.Host(request.Host) is { } host ? IPEndPoint.Parse(host.ConsensusAddress) : null;
        var outcome = await node.ProposeAsync(new RemoveHost(request.Host, request.Force) { At = time.GetUtcNow() }, ct).ConfigureAwait(false);
        if (outcome.Error is { } error)
        {
            return error;
        }

        if (address is not null && node.IsMember(address) && !await node.RemoveMemberAsync(address, ct).ConfigureAwait(false))
        {
            return FerryError.Unavailable($"host '{request.Host}' left the state but the consensus group did not commit its removal; run the command again");
        }

        return ClusterViews.Status(node.State, node, options.HostName);
    }

    /// <summary>Proposes a command through the leader, wherever it is, and returns its outcome.</summary>
    public async Task<Result<CommandOutcome>> ProposeAsync(ClusterCommand command, CancellationToken ct)
    {
        if (_node is not { } node)
        {
            return ClusterErrors.NotInCluster;
        }

        // If leadership moves during the call, the command may or may not be in the log; its id makes the retry safe.
        return await OnLeaderAsync("peer/commands", () => PeerClient.Body(command), async ct => (Result<CommandOutcome>)await node.ProposeAsync(command, ct).ConfigureAwait(false), ct)
            .ConfigureAwait(false);
    }

    /// <summary>A request to another member's peer API (cluster certificates both ways).</summary>
    public async Task<Result<T>> CallHostAsync<T>(string host, string path, object body, TimeSpan timeout, CancellationToken ct)
    {
        if (_peers is not { } peers || State?.Host(host) is not { } record)
        {
            return FerryError.Unavailable($"host '{host}' is not a member this host can reach");
        }

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(timeout);
        try
        {
            return await peers.SendAsync<T>(HttpMethod.Post, new Uri(new Uri(record.ApiAddress), path), PeerClient.Body(body), deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return FerryError.Unavailable($"{host} did not answer within {timeout.TotalSeconds:0.#} s");
        }
    }

    /// <summary>The cluster as the leader sees it (every host's health), or as this host does when no leader answers.</summary>
    public async Task<Result<ClusterStatusView>> StatusAsync(bool local, CancellationToken ct, bool linearizable = false)
    {
        if (_node is not { } node)
        {
            return ClusterErrors.NotInCluster;
        }

        if (linearizable)
        {
            // A read barrier: this host's view once it has applied everything committed before the call.
            try
            {
                return ClusterViews.Status(await node.ReadAsync(ct).ConfigureAwait(false), node, options.HostName);
            }
            catch (Exception e) when (e is QuorumUnreachableException or TimeoutException)
            {
                return FerryError.Unavailable($"no linearizable read: {e.Message}");
            }
        }

        if (local)
        {
            return ClusterViews.Status(node.State, node, options.HostName);
        }

        var fromLeader = await OnLeaderAsync("peer/status", () => null, _ => Task.FromResult<Result<ClusterStatusView>>(ClusterViews.Status(node.State, node, options.HostName)), ct, HttpMethod.Get)
            .ConfigureAwait(false);
        return fromLeader.IsOk ? fromLeader : ClusterViews.Status(node.State, node, options.HostName);
    }

    /// <summary>
    /// One try, without waiting for an election: <paramref name="onLeader"/> when this host leads, else the
    /// request to the leader this host knows, within <paramref name="timeout"/> (for requests repeated on a beat).
    /// </summary>
    public async Task<Result<T>> AskLeaderOnceAsync<T>(string path, HttpContent body, Func<CancellationToken, Task<Result<T>>> onLeader, TimeSpan timeout, CancellationToken ct)
    {
        if (_node is not { } node || _peers is not { } peers)
        {
            return ClusterErrors.NotInCluster;
        }

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(timeout);
        if (node.IsLeader)
        {
            try
            {
                return await onLeader(deadline.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                return FerryError.Unavailable($"this host, the leader, did not answer within {timeout.TotalMilliseconds:0} ms");
            }
        }

        if (node.Leader is not IPEndPoint leader || node.State.Hosts.Values.FirstOrDefault(h => h.ConsensusAddress == leader.ToString()) is not { } target || target.Name == options.HostName)
        {
            return FerryError.Unavailable("no leader known");
        }

        try
        {
            return await peers.SendAsync<T>(HttpMethod.Post, new Uri(new Uri(target.ApiAddress), path), body, deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return FerryError.Unavailable($"the leader {target.Name} did not answer within {timeout.TotalMilliseconds:0} ms");
        }
    }

    /// <summary>
    /// Runs <paramref name="onLeader"/> when this host leads, or sends the request to the leader's peer API;
    /// retries while leadership moves, for at most <see cref="LeaderWait"/>.
    /// </summary>
    private async Task<Result<T>> OnLeaderAsync<T>(
        string path, Func<HttpContent?> body, Func<CancellationToken, Task<Result<T>>> onLeader, CancellationToken ct, HttpMethod? method = null)
    {
        var node = _node!;
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(LeaderWait);
        FerryError? last = null;
        while (!deadline.IsCancellationRequested)
        {
            if (node.IsLeader)
            {
                try
                {
                    return await onLeader(deadline.Token).ConfigureAwait(false);
                }
                catch (NotLeaderException)
                {
                    // Deposed during the call (a leader cut off from the majority steps down): ask the next leader.
                    last = FerryError.Unavailable("this host lost the leadership during the request");
                    await DelayAsync(deadline.Token).ConfigureAwait(false);
                    continue;
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                {
                    break;
                }
            }

            if (node.Leader is not IPEndPoint leader)
            {
                try
                {
                    await node.WaitForLeaderAsync(LeaderWait, deadline.Token).ConfigureAwait(false);
                }
                catch (Exception e) when (e is TimeoutException or OperationCanceledException && !ct.IsCancellationRequested)
                {
                    break;
                }

                continue;
            }

            var target = node.State.Hosts.Values.FirstOrDefault(h => h.ConsensusAddress == leader.ToString());
            if (target?.Name == options.HostName)
            {
                // This host's own, outdated idea of the leader (it was deposed): wait for the election.
                await DelayAsync(deadline.Token).ConfigureAwait(false);
                continue;
            }

            if (target is null)
            {
                return FerryError.Unavailable($"the leader at {leader} is not in this host's copy of the state yet; try again");
            }

            try
            {
                var result = await _peers!.SendAsync<T>(method ?? HttpMethod.Post, new Uri(new Uri(target.ApiAddress), path), body(), deadline.Token).ConfigureAwait(false);
                if (result.IsOk || result.Error.Code != ErrorCode.Unavailable)
                {
                    return result;
                }

                last = result.Error;
                await DelayAsync(deadline.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                // A leader that hangs (paused, cut off) answers nothing until the deadline.
                last = FerryError.Unavailable($"the leader {target.Name} did not answer");
                break;
            }
        }

        ct.ThrowIfCancellationRequested();
        return FerryError.Unavailable($"no leader answered within {LeaderWait.TotalSeconds:0} s: the cluster has no quorum from this host's side{(last is null ? "" : $" ({last.Message})")}");
    }

    private async Task DelayAsync(CancellationToken ct)
    {
        try
        {
            await Task.Delay(TimeSpan.FromMilliseconds(200), time, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // The loop's deadline ends the wait; the caller's cancellation is checked after the loop.
        }
    }

    /// <summary>Why a proposed command did not take effect: the cluster could not be asked, or the state machine refused it.</summary>
    public static FerryError? ErrorOf(Result<CommandOutcome> proposed) => proposed.TryGetValue(out var outcome, out var error) ? outcome.Error : error;

    private async Task<ClusterState> WaitUntilAsync(Func<ClusterState, bool> condition, CancellationToken ct)
    {
        while (true)
        {
            var state = _node!.State;
            if (condition(state))
            {
                return state;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(50), time, ct).ConfigureAwait(false);
        }
    }

    private async Task StartNodeAsync(ClusterIdentity identity, ClusterCredentials credentials, CancellationToken ct)
    {
        var node = await ConsensusNode.StartAsync(
            new ConsensusNodeOptions(_files.ConsensusDirectory, IPEndPoint.Parse(options.ConsensusListen), identity.First, credentials.Host, credentials.Authority, options.ConsensusTiming,
                Witness: identity.Role == HostRole.Witness),
            loggers,
            ct).ConfigureAwait(false);
        _identity = identity;
        _credentials = credentials;
        _peers = PeerClient.ForMember(credentials);
        _seenSelf = false;
        node.StateChanged += OnStateChanged;
        node.LeaderChanged += leader => Log.LeaderChanged(_log, leader?.ToString() ?? "none", options.HostName);
        _node = node;
        Log.ConsensusStarted(_log, identity.ClusterName, options.HostName, options.ConsensusListen);
    }

    /// <summary>A witness holds no VMs or volumes, not even ones of its own.</summary>
    public FerryError? WitnessRefusal() =>
        _identity?.Role == HostRole.Witness ? FerryError.WrongState($"{options.HostName} is a witness of its cluster: it votes and holds no VMs or volumes") : null;

    /// <summary>Waits until this host has applied everything committed so far (a read barrier); gives up quietly without a quorum.</summary>
    public async Task CatchUpAsync(CancellationToken ct)
    {
        if (_node is { } node)
        {
            try
            {
                await node.ReadAsync(ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is QuorumUnreachableException or TimeoutException)
            {
                // The command was applied; the answer may show this host's older view.
            }
        }
    }

    /// <summary>Waits until the state changes, at most <paramref name="timeout"/>.</summary>
    public async Task WaitForChangeAsync(TimeSpan timeout, CancellationToken ct)
    {
        try
        {
            await Volatile.Read(ref _changed).Task.WaitAsync(timeout, time, ct).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // Waited long enough; the caller looks again either way.
        }
    }

    private void OnStateChanged(ClusterState state)
    {
        Interlocked.Exchange(ref _changed, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

        // Only this membership's record counts: a host that joins again replays its earlier join and removal from the log.
        var present = state.Host(options.HostName) is { } record && record.JoinedAt == _identity?.JoinedAt;
        if (present)
        {
            _seenSelf = true;
        }
        else if (_seenSelf && state.Cluster is not null && _removal.IsCompleted)
        {
            // Removed from the cluster: leave the group and set the membership aside, so this host can join again.
            _seenSelf = false;
            _removal = LeaveAsync();
        }
    }

    private async Task LeaveAsync()
    {
        await Task.Yield();
        await _membership.WaitAsync(_stopping.Token).ConfigureAwait(false);
        try
        {
            Log.HostRemoved(_log, options.HostName);
            await StopNodeAsync().ConfigureAwait(false);
            _files.SetAside(time.GetUtcNow());
        }
        finally
        {
            _membership.Release();
        }
    }

    private async Task StopNodeAsync()
    {
        var node = Interlocked.Exchange(ref _node, null);
        if (node is not null)
        {
            node.StateChanged -= OnStateChanged;
            await node.DisposeAsync().ConfigureAwait(false);
        }

        _identity = null;
        _peers?.Dispose();
        _peers = null;
        _credentials?.Dispose();
        _credentials = null;
    }

    private HostRecord LocalHost(HostRole role, DateTimeOffset joinedAt) => new(
        options.HostName,
        IPEndPoint.Parse(options.ConsensusListen).ToString(),
        $"https://{options.PeerListen}/",
        role == HostRole.Member ? options.ReplicationListen : null,
        role,
        joinedAt);

    private FerryError? HostName() =>
        ResourceName.IsValid(options.HostName) ? null : FerryError.InvalidArgument($"this host's name '{options.HostName}' cannot be a cluster host name: {ResourceName.Rule} (see --host-name)");

    private static string KeyPem(X509Certificate2 authority)
    {
        using var key = authority.GetECDsaPrivateKey() ?? throw new InvalidOperationException("the cluster authority's key is missing");
        return key.ExportPkcs8PrivateKeyPem();
    }


    public async ValueTask DisposeAsync()
    {
        await StopNodeAsync().ConfigureAwait(false);
        _membership.Dispose();
        _stopping.Dispose();
    }
}

/// <summary>The cluster authority's certificate, served to a joining host so it can check the token's fingerprint.</summary>
public sealed record AuthorityView(string CertificatePem);
