namespace Ferry.Cluster.State;

/// <summary>Creates the cluster with its first host; only on an empty state.</summary>
public sealed record InitializeCluster(Guid ClusterId, string Name, string CaCertificatePem, HostRecord FirstHost, Leases.LeaseTimings? Leases = null) : ClusterCommand
{
    public override string? HostSubject => FirstHost.Name;

    internal override Result<StateChange> Execute(ClusterState state)
    {
        if (state.Cluster is { } existing)
        {
            return FerryError.Conflict($"the cluster is already initialized as '{existing.Name}' ({existing.Id})");
        }

        if (!ResourceName.IsValid(Name))
        {
            return FerryError.InvalidArgument($"invalid cluster name '{Name}': {ResourceName.Rule}");
        }

        if (HostChecks.Invalid(FirstHost) is { } invalid)
        {
            return invalid;
        }

        if (FirstHost.Role != HostRole.Member)
        {
            return FerryError.InvalidArgument("the first host cannot be a witness: a cluster needs a host that holds data");
        }

        if (Leases?.Check() is { } timings)
        {
            return timings;
        }

        return new StateChange(
            state with { Cluster = new ClusterInfo(ClusterId, Name, CaCertificatePem, At, Leases: Leases), Hosts = state.Hosts.Add(FirstHost.Name, FirstHost) },
            $"cluster '{Name}' created with host {FirstHost.Name}");
    }
}

/// <summary>Records a one-time join token (only the hash of its secret).</summary>
public sealed record IssueJoinToken(string TokenId, string SecretHash, DateTimeOffset ExpiresAt) : ClusterCommand
{
    internal override Result<StateChange> Execute(ClusterState state)
    {
        if (state.Cluster is null)
        {
            return ClusterErrors.NotInCluster;
        }

        if (ExpiresAt <= At)
        {
            return FerryError.InvalidArgument($"a join token must expire after it is issued (expires {ExpiresAt:u}, issued {At:u})");
        }

        if (state.Tokens.ContainsKey(TokenId))
        {
            return FerryError.Conflict($"a join token with id {TokenId} already exists");
        }

        // Tokens past their time are of no use to anyone: they go when the next one is issued.
        var tokens = state.Tokens.RemoveRange(state.Tokens.Values.Where(t => t.ExpiresAt < At).Select(t => t.Id));
        return new StateChange(
            state with { Tokens = tokens.Add(TokenId, new JoinToken(TokenId, SecretHash, ExpiresAt, null)) },
            $"join token {TokenId} issued, valid until {ExpiresAt:u}");
    }
}

/// <summary>Adds a host that presented a valid join token; the token is used up.</summary>
public sealed record JoinHost(string TokenId, string SecretHash, HostRecord Host) : ClusterCommand
{
    public override string? HostSubject => Host.Name;

    internal override Result<StateChange> Execute(ClusterState state)
    {
        if (state.Cluster is null)
        {
            return ClusterErrors.NotInCluster;
        }

        if (JoinTokenCheck.Refusal(state, TokenId, SecretHash, At) is { } refused)
        {
            return refused;
        }

        if (HostChecks.Invalid(Host) is { } invalid)
        {
            return invalid;
        }

        if (state.Hosts.ContainsKey(Host.Name))
        {
            return FerryError.Conflict($"a host named '{Host.Name}' is already a member");
        }

        if (state.Hosts.Values.FirstOrDefault(h => h.ConsensusAddress == Host.ConsensusAddress) is { } same)
        {
            return FerryError.Conflict($"host '{same.Name}' already uses the address {Host.ConsensusAddress}");
        }

        return new StateChange(
            state with
            {
                Hosts = state.Hosts.Add(Host.Name, Host),
                Tokens = state.Tokens.SetItem(TokenId, state.Tokens[TokenId] with { UsedBy = Host.Name }),
            },
            $"host {Host.Name} joined as {FerryJson.Name(Host.Role)} at {Host.ConsensusAddress}");
    }
}

/// <summary>Removes a host. Refused while VMs are placed on it or it holds volume copies, unless forced.</summary>
/// <param name="Force">Remove anyway: its VMs lose their placement and its copies are dropped from their volumes.</param>
public sealed record RemoveHost(string Name, bool Force = false) : ClusterCommand
{
    public override string? HostSubject => Name;

    internal override Result<StateChange> Execute(ClusterState state)
    {
        if (!state.Hosts.ContainsKey(Name))
        {
            return FerryError.NotFound($"no host named '{Name}' in the cluster");
        }

        if (state.Hosts.Count == 1)
        {
            return FerryError.WrongState($"'{Name}' is the last host of the cluster");
        }

        var vms = state.Vms.Values.Where(v => v.Host == Name).Select(v => v.Name).Order(StringComparer.Ordinal).ToList();
        var volumes = state.Volumes.Values.Where(v => v.Hosts.Contains(Name)).Select(v => v.Name).Order(StringComparer.Ordinal).ToList();
        if (!Force && (vms.Count > 0 || volumes.Count > 0))
        {
            return FerryError.WrongState(
                $"host '{Name}' still has VMs [{string.Join(", ", vms)}] and volume copies [{string.Join(", ", volumes)}]: move them first, or remove with --force");
        }

        var next = state with
        {
            Hosts = state.Hosts.Remove(Name),
            Reports = state.Reports.Remove(Name),
            Vms = state.Vms
                .SetItems(state.Vms.Values.Where(v => v.Migration is { } m && (m.Source == Name || m.Target == Name)).Select(v => KeyValuePair.Create(v.Name, v.WithoutMigration(At, $"{Name} was removed"))))
                .SetItems(vms.Select(vm => KeyValuePair.Create(vm, state.Vms[vm].WithoutMigration(At, $"{Name} was removed") with { Host = null }))),
            Volumes = state.Volumes.SetItems(volumes.Select(v => KeyValuePair.Create(v, WithoutCopy(state.Volumes[v], Name)))),
        };
        return new StateChange(next, Force && (vms.Count > 0 || volumes.Count > 0)
            ? $"host {Name} removed by force; VMs unplaced: [{string.Join(", ", vms)}]; copies dropped: [{string.Join(", ", volumes)}]"
            : $"host {Name} removed");
    }

    private static VolumeRecord WithoutCopy(VolumeRecord volume, string host) => volume with
    {
        Hosts = volume.Hosts.Remove(host),
        Primary = volume.Primary == host ? null : volume.Primary,
        Outdated = volume.Outdated.Remove(host),
    };
}

/// <summary>Errors said the same way by the state machine and the hosts.</summary>
public static class ClusterErrors
{
    public static readonly FerryError NotInCluster = FerryError.WrongState("this host is not part of a cluster: run 'ferry cluster init' or 'ferry node join'");
}

internal static class HostChecks
{
    public static FerryError IsFenced(HostRecord host) =>
        FerryError.WrongState($"host '{host.Name}' is fenced since {host.Fenced!.At:u} ({host.Fenced.Reason}): it runs nothing until it is back");

    public static FerryError? Invalid(HostRecord host)
    {
        if (!ResourceName.IsValid(host.Name))
        {
            return FerryError.InvalidArgument($"invalid host name '{host.Name}': {ResourceName.Rule}");
        }

        if (string.IsNullOrWhiteSpace(host.ConsensusAddress) || string.IsNullOrWhiteSpace(host.ApiAddress))
        {
            return FerryError.InvalidArgument($"host '{host.Name}' needs a consensus address and an API address");
        }

        return null;
    }
}

/// <summary>Why a join token cannot be used now, if it cannot.</summary>
public static class JoinTokenCheck
{
    public static FerryError? Refusal(ClusterState state, string tokenId, string secretHash, DateTimeOffset now)
    {
        if (!state.Tokens.TryGetValue(tokenId, out var token))
        {
            return FerryError.InvalidArgument("unknown join token: ask for a new one with 'ferry cluster join-token'");
        }

        if (!string.Equals(token.SecretHash, secretHash, StringComparison.Ordinal))
        {
            return FerryError.InvalidArgument("the join token's secret is wrong: copy the whole token");
        }

        if (token.UsedBy is { } usedBy)
        {
            return FerryError.Conflict($"the join token was already used by host '{usedBy}': ask for a new one");
        }

        if (now > token.ExpiresAt)
        {
            return FerryError.WrongState($"the join token expired at {token.ExpiresAt:u}: ask for a new one");
        }

        return null;
    }
}

/// <summary>
/// Puts a host in maintenance (drain: no VM is placed on it and its VMs move away) or takes it out
/// again (undrain). Repeating it changes nothing.
/// </summary>
public sealed record SetMaintenance(string Name, bool On) : ClusterCommand
{
    public override string? HostSubject => Name;

    internal override Result<StateChange> Execute(ClusterState state)
    {
        if (state.Host(Name) is not { } host)
        {
            return FerryError.NotFound($"no host named '{Name}' in the cluster");
        }

        if (host.Role != HostRole.Member)
        {
            return FerryError.InvalidArgument($"host '{Name}' is a witness: it runs no VMs to drain");
        }

        if (On == host.Maintenance is not null)
        {
            return new StateChange(state, On ? $"host {Name} is in maintenance already" : $"host {Name} is not in maintenance");
        }

        return new StateChange(
            state with { Hosts = state.Hosts.SetItem(Name, host with { Maintenance = On ? new HostMaintenance(At) : null }) },
            On ? $"host {Name} in maintenance: its VMs move away, none is placed on it" : $"host {Name} out of maintenance: it takes VMs again");
    }
}
