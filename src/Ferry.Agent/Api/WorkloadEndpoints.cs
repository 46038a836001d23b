using Ferry.Agent.Cluster;
using Ferry.Agent.Vms;
using Ferry.Cluster.State;
using Ferry.Hypervisor;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Ferry.Agent.Api;

/// <summary>The cluster's volumes and VMs (/api/v1/cluster/volumes, /api/v1/cluster/vms), answered by any host.</summary>
internal static class WorkloadEndpoints
{
    public static void Map(IEndpointRouteBuilder app)
    {
        var volumes = app.MapGroup("/api/v1/cluster/volumes").WithTags("Cluster volumes");
        volumes.MapGet("/", (ClusterWorkloads w) => ApiResults.From(w.Volumes())).Produces<ClusterVolumeView[]>();
        volumes.MapPost("/", async (HttpRequest request, ClusterWorkloads w, CancellationToken ct) =>
            await JsonBody.HandleAsync<ClusterVolumeRequest, ClusterVolumeView>(request, "volume request", body => w.CreateVolumeAsync(body, ct), ct, StatusCodes.Status201Created)).Accepts<ClusterVolumeRequest>("application/json").Produces<ClusterVolumeView>(StatusCodes.Status201Created);
        volumes.MapGet("/{name}", (string name, ClusterWorkloads w) => ApiResults.From(w.Volume(name))).Produces<ClusterVolumeView>();
        volumes.MapDelete("/{name}", async (string name, ClusterWorkloads w, CancellationToken ct) =>
            await w.DeleteVolumeAsync(name, ct) is { } error ? ApiResults.Problem(error) : Results.NoContent());
        volumes.MapPost("/{name}/promote", async (string name, HttpRequest request, ClusterWorkloads w, CancellationToken ct) =>
            await JsonBody.HandleAsync<ClusterPromoteRequest, ClusterVolumeView>(request, "promote request", body => w.PromoteAsync(name, body, ct), ct)).Accepts<ClusterPromoteRequest>("application/json").Produces<ClusterVolumeView>();

        var vms = app.MapGroup("/api/v1/cluster/vms").WithTags("Cluster VMs");
        vms.MapGet("/", (ClusterWorkloads w) => ApiResults.From(w.Vms())).Produces<VmView[]>();
        vms.MapPost("/", async (
            HttpRequest request,
            int? maxRestarts,
            int? maxRelocations,
            string? antiAffinity,
            [Microsoft.AspNetCore.Mvc.FromQuery] string[]? prefer,
            [Microsoft.AspNetCore.Mvc.FromQuery] string[]? dependsOn,
            int? dependencyTimeoutSeconds,
            ClusterWorkloads w,
            CancellationToken ct) =>
            await JsonBody.HandleAsync<VmSpec, VmView>(
                request,
                "VM spec",
                spec => w.DefineVmAsync(
                    spec,
                    new RestartLimits(maxRestarts ?? RestartLimits.Default.MaxRestarts, maxRelocations ?? RestartLimits.Default.MaxRelocations),
                    antiAffinity is null && prefer is not { Length: > 0 } && dependsOn is not { Length: > 0 } && dependencyTimeoutSeconds is null
                        ? null
                        : new VmRules(antiAffinity, prefer, dependsOn, dependencyTimeoutSeconds is { } seconds ? TimeSpan.FromSeconds(seconds) : null),
                    ct),
                ct,
                StatusCodes.Status201Created)).Accepts<VmSpec>("application/json").Produces<VmView>(StatusCodes.Status201Created);
        vms.MapGet("/{name}", (string name, ClusterWorkloads w) => ApiResults.From(w.Vm(name))).Produces<VmView>();
        vms.MapDelete("/{name}", async (string name, ClusterWorkloads w, CancellationToken ct) =>
            await w.DeleteVmAsync(name, ct) is { } error ? ApiResults.Problem(error) : Results.NoContent());
        vms.MapPost("/{name}/start", async (string name, ClusterWorkloads w, CancellationToken ct) => ApiResults.From(await w.StartAsync(name, ct))).Produces<VmView>();
        vms.MapPost("/{name}/migrate", async (string name, string? to, long? maxDowntimeMs, long? bandwidthMiBps, long? timeoutSeconds, ClusterWorkloads w, CancellationToken ct) =>
        {
            var d = MigrationLimits.Default;
            var limits = maxDowntimeMs is null && bandwidthMiBps is null && timeoutSeconds is null ? null : new MigrationLimits(
                maxDowntimeMs is { } ms ? TimeSpan.FromMilliseconds(ms) : d.MaxDowntime,
                bandwidthMiBps is { } mibps ? mibps << 20 : d.BandwidthBytesPerSecond,
                timeoutSeconds is { } s ? TimeSpan.FromSeconds(s) : d.Timeout);
            return ApiResults.From(await w.MigrateAsync(name, to, limits, ct));
        }).Produces<VmView>();
        vms.MapPost("/{name}/stop", async (string name, ClusterWorkloads w, CancellationToken ct) => ApiResults.From(await w.StopAsync(name, ct))).Produces<VmView>();
    }
}
