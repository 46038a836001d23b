using Ferry.Hypervisor;
using Ferry.Agent.Events;
using Ferry.Agent.Vms;
using Ferry.Agent.Volumes;
using Ferry.Storage.Replication;
using Ferry.Storage.Replication.Wire;
using Ferry.Storage.Volumes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Ferry.Agent.Api;

/// <summary>The volume routes of the REST API (/api/v1/volumes).</summary>
internal static class VolumeEndpoints
{
    public static void Map(IEndpointRouteBuilder app)
    {
        var volumes = app.MapGroup("/api/v1/volumes").WithTags("Volumes");
        volumes.MapGet("/", async (VolumeStore store, VolumeReplication replication, CancellationToken ct) =>
            Results.Json((await store.ListAsync(ct)).Select(replication.WithCopyState), FerryJson.Options)).Produces<VolumeInfo[]>();
        volumes.MapPost("/", CreateAsync).Accepts<CreateVolumeRequest>("application/json").Produces<VolumeInfo>(StatusCodes.Status201Created);
        volumes.MapGet("/{name}", async (string name, VolumeStore store, VolumeReplication replication, CancellationToken ct) =>
            ApiResults.From((await store.InfoAsync(name, ct)).Map(replication.WithCopyState))).Produces<VolumeInfo>();
        volumes.MapPost("/{name}/resize", ResizeAsync).Accepts<ResizeVolumeRequest>("application/json").Produces<VolumeInfo>();
        volumes.MapDelete("/{name}", DeleteAsync);
        volumes.MapPut("/{name}/replication", ReplicateAsync).Accepts<ReplicationRequest>("application/json").Produces<VolumeInfo>();
        volumes.MapPost("/{name}/promote", PromoteAsync).Accepts<PromoteRequest>("application/json").Produces<VolumeActionResult>();
        volumes.MapPost("/{name}/demote", DemoteAsync).Produces<VolumeInfo>();
        volumes.MapPost("/{name}/verify", VerifyAsync).Accepts<VerifyRequest>("application/json").Produces<VolumeActionResult>();
        volumes.MapPost("/{name}/resolve", ResolveAsync).Accepts<ResolveRequest>("application/json").Produces<VolumeActionResult>();
        volumes.MapPost("/{name}/disconnect", (string name, VolumeReplication r, VolumeStore s, EventLog e, CancellationToken ct) => SetDisconnectedAsync(name, true, r, s, e, ct)).Produces<VolumeInfo>();
        volumes.MapPost("/{name}/connect", (string name, VolumeReplication r, VolumeStore s, EventLog e, CancellationToken ct) => SetDisconnectedAsync(name, false, r, s, e, ct)).Produces<VolumeInfo>();
    }

    private static async Task<IResult> ReplicateAsync(string name, HttpRequest request, VolumeReplication replication, VolumeStore store, EventLog events, CancellationToken ct)
    {
        if (ClusterOwned(replication, name) is { } owned)
        {
            return ApiResults.Problem(owned);
        }

        if (!(await JsonBody.ReadAsync<ReplicationRequest>(request, "replication request", ct)).TryGetValue(out var body, out var error))
        {
            return ApiResults.Problem(error);
        }

        if (!replication.TryGet(name, out var copy))
        {
            return ApiResults.Problem(NotFound(name));
        }

        if (CheckPeers(body.Peers ?? [], replication.Host) is { } invalid)
        {
            return ApiResults.Problem(invalid);
        }

        if (!Enum.IsDefined(body.Protocol))
        {
            return ApiResults.Problem(FerryError.InvalidArgument($"unknown protocol '{body.Protocol}': use A, B or C"));
        }

        if (body.AllowTwoPrimaries && (body.Protocol != ReplicationProtocol.C || body.Peers is not { Count: > 0 }))
        {
            return ApiResults.Problem(FerryError.InvalidArgument("two primaries need protocol C and a peer"));
        }

        var settings = copy.Settings with
        {
            Peers = body.Peers ?? [],
            Protocol = body.Protocol,
            ChecksumResync = body.ChecksumResync,
            ResyncRateLimit = Math.Max(0, body.ResyncRateLimit),
            AllowTwoPrimaries = body.AllowTwoPrimaries,
        };
        await copy.ApplySettingsAsync(settings, ct);
        await VolumeReplication.SaveAsync(copy, ct);
        events.Append("volume.replication", null, $"volume '{name}' replicates to {string.Join(", ", settings.Peers.Select(p => $"{p.Host} ({p.Address})"))} with protocol {settings.Protocol}");
        return ApiResults.From((await store.InfoAsync(name, ct)).Map(replication.WithCopyState));
    }

    private static FerryError? CheckPeers(IReadOnlyList<PeerAddress> peers, string self)
    {
        if (peers.Count > 2)
        {
            return FerryError.InvalidArgument($"a volume has at most 3 copies: give at most 2 peers, not {peers.Count}");
        }

        foreach (var peer in peers)
        {
            if (string.IsNullOrWhiteSpace(peer?.Host) || peer.Host == self)
            {
                return FerryError.InvalidArgument($"invalid peer host '{peer?.Host}': a peer is another host ({self} is this one)");
            }

            try
            {
                VolumeReplication.ParseAddress(peer.Address ?? "");
            }
            catch (FormatException e)
            {
                return FerryError.InvalidArgument($"invalid address for peer {peer.Host}: {e.Message}");
            }
        }

        return peers.Select(p => p.Host).Distinct(StringComparer.Ordinal).Count() != peers.Count
            ? FerryError.InvalidArgument("each peer host may be named once")
            : null;
    }

    private static async Task<IResult> PromoteAsync(string name, HttpRequest request, VolumeReplication replication, EventLog events, CancellationToken ct)
    {
        if (ClusterOwned(replication, name) is { } owned)
        {
            return ApiResults.Problem(owned);
        }

        if (!(await JsonBody.ReadAsync<PromoteRequest>(request, "promote request", ct)).TryGetValue(out var body, out var error))
        {
            return ApiResults.Problem(error);
        }

        if (!replication.TryGet(name, out var copy))
        {
            return ApiResults.Problem(NotFound(name));
        }

        if (body.Dual)
        {
            if (body.Epoch != 0 || body.Force)
            {
                return ApiResults.Problem(FerryError.InvalidArgument("a second primary takes the current primary's epoch and cannot be forced: give --dual alone"));
            }

            if (!(await copy.PromoteSecondAsync(ct)).TryGetValue(out var joined, out var notJoined))
            {
                return ApiResults.Problem(notJoined);
            }

            await VolumeReplication.SaveAsync(copy, ct);
            events.Append("volume.promoted", null, $"volume '{name}' on {replication.Host}: {joined}");
            return Results.Json(new VolumeActionResult(name, joined), FerryJson.Options);
        }

        if (body.Epoch == 0)
        {
            return ApiResults.Problem(FerryError.InvalidArgument("give the new epoch (above every epoch any copy has seen), or --dual for a second primary"));
        }

        if (!(await copy.PromoteAsync(body.Epoch, body.Force, ct)).TryGetValue(out var warning, out var refused))
        {
            return ApiResults.Problem(refused);
        }

        await VolumeReplication.SaveAsync(copy, ct);
        events.Append("volume.promoted", null, $"volume '{name}' promoted to primary on {replication.Host} at epoch {body.Epoch}{(warning.Length > 0 ? $"; {warning}" : "")}");
        return Results.Json(new VolumeActionResult(name, warning.Length > 0 ? warning : $"primary at epoch {body.Epoch}"), FerryJson.Options);
    }

    private static async Task<IResult> DemoteAsync(string name, VolumeReplication replication, VolumeStore store, VmManager vms, EventLog events, CancellationToken ct)
    {
        if (ClusterOwned(replication, name) is { } owned)
        {
            return ApiResults.Problem(owned);
        }

        if (!replication.TryGet(name, out var copy))
        {
            return ApiResults.Problem(NotFound(name));
        }

        if (copy.Settings.Role == CopyRole.Secondary)
        {
            return ApiResults.Problem(FerryError.WrongState($"the copy of '{name}' on {replication.Host} is already secondary"));
        }

        if (vms.UsersOf(name).Where(u => vms.Get(u) is { IsOk: true, Value.State: VmState.Running or VmState.Paused or VmState.Starting }).ToList() is [_, ..] running)
        {
            return ApiResults.Problem(FerryError.WrongState($"cannot demote '{name}': VM {string.Join(", ", running)} on this host is running on it; stop it first"));
        }

        await copy.DemoteAsync(ct);
        await VolumeReplication.SaveAsync(copy, ct);
        events.Append("volume.demoted", null, $"volume '{name}' demoted to secondary on {replication.Host}");
        return ApiResults.From((await store.InfoAsync(name, ct)).Map(replication.WithCopyState));
    }

    private static async Task<IResult> VerifyAsync(string name, HttpRequest request, VolumeReplication replication, EventLog events, CancellationToken ct)
    {
        var body = new VerifyRequest(null);
        if (request.HasJsonContentType() && !(await JsonBody.ReadAsync<VerifyRequest>(request, "verify request", ct)).TryGetValue(out body, out var error))
        {
            return ApiResults.Problem(error);
        }

        if (!replication.TryGet(name, out var copy))
        {
            return ApiResults.Problem(NotFound(name));
        }

        if (!copy.StartVerify(body.Peer).TryGetValue(out var started, out var refused))
        {
            return ApiResults.Problem(refused);
        }

        events.Append("volume.verify", null, $"volume '{name}': {started}");
        return Results.Json(new VolumeActionResult(name, started), FerryJson.Options);
    }

    private static async Task<IResult> ResolveAsync(string name, HttpRequest request, VolumeReplication replication, EventLog events, CancellationToken ct)
    {
        if (!(await JsonBody.ReadAsync<ResolveRequest>(request, "resolve request", ct)).TryGetValue(out var body, out var error))
        {
            return ApiResults.Problem(error);
        }

        if (!replication.TryGet(name, out var copy))
        {
            return ApiResults.Problem(NotFound(name));
        }

        if (!copy.DiscardPeer(body.Discard ?? "").TryGetValue(out var report, out var refused))
        {
            return ApiResults.Problem(refused);
        }

        events.Append("volume.resolve", null, $"volume '{name}': split brain resolved by discarding {body.Discard}'s writes: {report}");
        return Results.Json(new VolumeActionResult(name, report), FerryJson.Options);
    }

    private static async Task<IResult> SetDisconnectedAsync(string name, bool disconnected, VolumeReplication replication, VolumeStore store, EventLog events, CancellationToken ct)
    {
        if (!replication.TryGet(name, out var copy))
        {
            return ApiResults.Problem(NotFound(name));
        }

        await copy.ApplySettingsAsync(copy.Settings with { Disconnected = disconnected }, ct);
        await VolumeReplication.SaveAsync(copy, ct);
        events.Append(disconnected ? "volume.disconnected" : "volume.connected", null, $"volume '{name}' {(disconnected ? "disconnected from" : "connecting to")} its peers");
        return ApiResults.From((await store.InfoAsync(name, ct)).Map(replication.WithCopyState));
    }

    private static FerryError NotFound(string name) => FerryError.NotFound($"no volume named '{name}' (see: ferry volume list)");

    /// <summary>The cluster sets a managed copy's peers and role and deletes it; doing it here would be undone or lose data.</summary>
    private static FerryError? ClusterOwned(VolumeReplication replication, string name) =>
        replication.TryGet(name, out var copy) && copy.Settings.Managed
            ? FerryError.WrongState($"the copy of '{name}' is managed by the cluster: use /api/v1/cluster/volumes (ferry volume promote|delete on a cluster host)")
            : null;

    private static async Task<IResult> CreateAsync(HttpRequest request, VolumeStore store, VolumeReplication replication, EventLog events, Cluster.ClusterService cluster, CancellationToken ct)
    {
        if (cluster.WitnessRefusal() is { } witness)
        {
            return ApiResults.Problem(witness);
        }

        if (!(await JsonBody.ReadAsync<CreateVolumeRequest>(request, "volume request", ct)).TryGetValue(out var body, out var error))
        {
            return ApiResults.Problem(error);
        }

        var created = await store.CreateAsync(body.Name, body.Size, ct, body.CopyOf);
        if (created.IsOk && store.TryGet(body.Name, out var volume))
        {
            replication.Open(volume);
            events.Append("volume.created", null, body.CopyOf is { } id
                ? $"volume '{body.Name}' created as an empty copy of volume {id}, {body.Size} bytes"
                : $"volume '{body.Name}' created, {body.Size} bytes");
        }

        return ApiResults.From(created.Map(replication.WithCopyState), StatusCodes.Status201Created);
    }

    private static async Task<IResult> ResizeAsync(string name, HttpRequest request, VolumeStore store, EventLog events, CancellationToken ct)
    {
        if (!(await JsonBody.ReadAsync<ResizeVolumeRequest>(request, "resize request", ct)).TryGetValue(out var body, out var error))
        {
            return ApiResults.Problem(error);
        }

        var resized = await store.ResizeAsync(name, body.Size, body.Shrink, ct);
        if (resized.IsOk)
        {
            events.Append("volume.resized", null, $"volume '{name}' resized to {body.Size} bytes");
        }

        return ApiResults.From(resized);
    }

    /// <summary>A volume a VM uses is not deleted under it.</summary>
    private static async Task<IResult> DeleteAsync(string name, VolumeStore store, VolumeReplication replication, VmManager vms, EventLog events, CancellationToken ct)
    {
        if (ClusterOwned(replication, name) is { } owned)
        {
            return ApiResults.Problem(owned);
        }

        if (vms.UsersOf(name) is [var first, ..] users)
        {
            return ApiResults.Problem(FerryError.WrongState(
                $"cannot delete volume '{name}': VM{(users.Count > 1 ? "s" : string.Empty)} {string.Join(", ", users.Select(u => $"'{u}'"))} use{(users.Count > 1 ? string.Empty : "s")} it (delete {(users.Count > 1 ? "them" : $"'{first}'")} first)"));
        }

        await replication.CloseAsync(name);
        if (await store.DeleteAsync(name, ct) is { } error)
        {
            return ApiResults.Problem(error);
        }

        events.Append("volume.deleted", null, $"volume '{name}' deleted");
        return Results.NoContent();
    }
}
