using System.Security.Cryptography.X509Certificates;
using Ferry.Agent.Cluster;
using Ferry.Cluster.Reconcile;
using Ferry.Cluster.State;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Ferry.Agent.Api;

/// <summary>
/// The cluster routes: /api/v1/cluster for users (the local API), /peer for other hosts (the peer API,
/// HTTPS; everything but the two join steps needs a client certificate of the cluster).
/// </summary>
internal static class ClusterEndpoints
{
    public static void Map(IEndpointRouteBuilder app, string peerHost)
    {
        var cluster = app.MapGroup("/api/v1/cluster").WithTags("Cluster");
        cluster.MapPost("/init", async (HttpRequest request, ClusterService c, CancellationToken ct) =>
            await JsonBody.HandleAsync<InitClusterRequest, ClusterStatusView>(request, "cluster init request", body => c.InitAsync(body, ct), ct));
        cluster.MapPost("/join-tokens", async (HttpRequest request, ClusterService c, CancellationToken ct) =>
            await JsonBody.HandleAsync<JoinTokenRequest, JoinTokenView>(request, "join token request", body =>
                body.ValidSeconds is { } seconds and (< 1 or > 7 * 24 * 3600)
                    ? Task.FromResult<Result<JoinTokenView>>(FerryError.InvalidArgument($"invalid validity {seconds} s: give 1 second to 7 days"))
                    : c.IssueTokenAsync(body.ValidSeconds is { } s ? TimeSpan.FromSeconds(s) : ClusterService.DefaultTokenLifetime, ct), ct));
        cluster.MapPost("/join", async (HttpRequest request, ClusterService c, CancellationToken ct) =>
            await JsonBody.HandleAsync<JoinClusterRequest, ClusterStatusView>(request, "join request", body => c.JoinAsync(body, ct), ct));
        cluster.MapGet("/status", async (bool? local, bool? linearizable, ClusterService c, CancellationToken ct) =>
            ApiResults.From(await c.StatusAsync(local ?? false, ct, linearizable ?? false)));
        cluster.MapGet("/events", (ClusterService c) => c.Node is { } node
            ? Results.Json(node.State.Events, FerryJson.Options)
            : ApiResults.Problem(ClusterErrors.NotInCluster));
        cluster.MapPut("/hosts/{name}/fence-agent", async (string name, HttpRequest request, ClusterService c, CancellationToken ct) =>
            await JsonBody.HandleAsync<FenceAgentRequest, ClusterStatusView>(request, "fence agent", body => c.SetFenceAgentAsync(name, body.ToAgent(), ct), ct));
        cluster.MapDelete("/hosts/{name}/fence-agent", async (string name, ClusterService c, CancellationToken ct) =>
            ApiResults.From(await c.SetFenceAgentAsync(name, null, ct)));
        cluster.MapPost("/hosts/{name}/drain", async (string name, ClusterService c, CancellationToken ct) =>
            ApiResults.From(await c.SetMaintenanceAsync(name, on: true, ct)));
        cluster.MapPost("/hosts/{name}/undrain", async (string name, ClusterService c, CancellationToken ct) =>
            ApiResults.From(await c.SetMaintenanceAsync(name, on: false, ct)));
        cluster.MapPut("/settings", async (HttpRequest request, ClusterService c, CancellationToken ct) =>
            await JsonBody.HandleAsync<ClusterSettingsRequest, ClusterStatusView>(request, "cluster settings", body => c.SetSettingsAsync(body, ct), ct));
        cluster.MapGet("/verify", (ClusterService c) => ApiResults.From(c.Verify())).Produces<Risk[]>();
        cluster.MapDelete("/hosts/{name}", async (string name, bool? force, ClusterService c, CancellationToken ct) =>
            ApiResults.From(await c.RemoveAsync(new PeerHostRequest(name, force ?? false), ct)));

        var peer = app.MapGroup("/peer").RequireHost(peerHost).WithTags("Peer");
        peer.MapGet("/authority", (ClusterService c) => c.AuthorityPem is { } pem
            ? Results.Json(new AuthorityView(pem), FerryJson.Options)
            : ApiResults.Problem(ClusterErrors.NotInCluster));
        peer.MapPost("/join", async (HttpRequest request, ClusterService c, CancellationToken ct) =>
            await JsonBody.HandleAsync<PeerJoinRequest, PeerJoinResponse>(request, "join request", body => c.AnswerJoinAsync(body, ct), ct));

        var members = peer.MapGroup("").AddEndpointFilter(RequireClusterCertificate);
        members.MapPost("/commands", async (HttpRequest request, ClusterService c, CancellationToken ct) =>
            await JsonBody.HandleAsync<ClusterCommand, CommandOutcome>(request, "command", body => c.ProposeAsync(body, ct), ct));
        members.MapPost("/members", async (HttpRequest request, ClusterService c, CancellationToken ct) =>
            await JsonBody.HandleAsync<PeerHostRequest, HostStatusView>(request, "member request", body => c.AdmitAsync(body, ct), ct));
        members.MapPost("/remove", async (HttpRequest request, ClusterService c, CancellationToken ct) =>
            await JsonBody.HandleAsync<PeerHostRequest, ClusterStatusView>(request, "remove request", body => c.RemoveAsync(body, ct), ct));
        members.MapPost("/lease", async (HttpRequest request, LeaseService leases, CancellationToken ct) =>
            await JsonBody.HandleAsync<LeaseRequest, LeaseGrant>(request, "lease request", async body =>
                request.HttpContext.Connection.ClientCertificate?.GetNameInfo(X509NameType.DnsName, forIssuer: false) == body.Host
                    ? await leases.RenewAsync(body, ct)
                    : FerryError.InvalidArgument($"a host renews its own lease only, not {body.Host}'s"), ct));
        members.MapGet("/status", async (ClusterService c, CancellationToken ct) => ApiResults.From(await c.StatusAsync(local: true, ct)));
        members.MapPost("/migrations/prepare", async (HttpRequest request, MigrationTarget target, CancellationToken ct) =>
            await JsonBody.HandleAsync<MigrationRequest, MigrationReady>(request, "migration request", body => target.PrepareAsync(body, ct), ct));
        members.MapPost("/migrations/resume", async (HttpRequest request, MigrationTarget target, CancellationToken ct) =>
            await JsonBody.HandleAsync<MigrationRequest, MigrationReady>(request, "migration request", body => target.ResumeAsync(body, ct), ct));
    }

    // Kestrel already refused certificates that do not chain to the cluster authority; here, a missing one is refused.
    private static async ValueTask<object?> RequireClusterCertificate(EndpointFilterInvocationContext context, EndpointFilterDelegate next) =>
        context.HttpContext.Connection.ClientCertificate is null
            ? ApiResults.Problem(new FerryError(ErrorCode.WrongState, "this route is for hosts of the cluster: present the host's cluster certificate"))
            : await next(context);
}
