using System.Text.Json;
using Ferry.Agent.Events;
using Ferry.Agent.Vms;
using Ferry.Hypervisor;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Ferry.Agent.Api;

/// <summary>The VM and event routes of the REST API (/api/v1).</summary>
internal static class VmEndpoints
{
    private static readonly TimeSpan FollowPollInterval = TimeSpan.FromMilliseconds(200);

    public static void Map(IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/v1");
        // The CLI asks which API to use: a host in a cluster manages VMs and volumes through the cluster's.
        api.MapGet("/health", (Cluster.ClusterService c) => Results.Json(new HealthView("ok", c.State?.Cluster?.Name), FerryJson.Options));

        var vms = api.MapGroup("/vms").WithTags("VMs");
        vms.MapGet("/", (VmManager m) => Results.Json(m.List(), FerryJson.Options)).Produces<VmView[]>();
        vms.MapPost("/", CreateAsync).Accepts<VmSpec>("application/json").Produces<VmView>(StatusCodes.Status201Created);
        vms.MapGet("/{name}", (string name, VmManager m) => ApiResults.From(m.Get(name))).Produces<VmView>();
        vms.MapDelete("/{name}", async (string name, VmManager m, CancellationToken ct) =>
            ClusterOwned(m, name) ?? (await m.DeleteAsync(name, ct) is { } error ? ApiResults.Problem(error) : Results.NoContent()));
        vms.MapPost("/{name}/start", async (string name, VmManager m, CancellationToken ct) => ClusterOwned(m, name) ?? ApiResults.From(await m.StartAsync(name, ct)));
        vms.MapPost("/{name}/stop", async (string name, bool? force, VmManager m, CancellationToken ct) =>
            ClusterOwned(m, name) ?? ApiResults.From(await m.StopAsync(name, force ?? false, ct)));
        vms.MapPost("/{name}/restart", async (string name, VmManager m, CancellationToken ct) => ApiResults.From(await m.RestartAsync(name, ct)));
        vms.MapPost("/{name}/pause", async (string name, VmManager m, CancellationToken ct) => ApiResults.From(await m.PauseAsync(name, ct)));
        vms.MapPost("/{name}/resume", async (string name, VmManager m, CancellationToken ct) => ApiResults.From(await m.ResumeAsync(name, ct)));
        vms.MapGet("/{name}/console", ConsoleAsync).Produces<string>(contentType: "text/plain");

        api.MapGet("/events", EventsAsync).WithTags("Events").Produces<FerryEvent[]>();
    }

    /// <summary>A VM the cluster runs is started, stopped and deleted through the cluster, or its local manager would undo it.</summary>
    private static IResult? ClusterOwned(VmManager manager, string name) =>
        manager.Get(name) is { IsOk: true, Value.Managed: true }
            ? ApiResults.Problem(FerryError.WrongState($"VM '{name}' is run by the cluster: use /api/v1/cluster/vms (ferry vm start|stop|delete on a cluster host)"))
            : null;

    private static async Task<IResult> CreateAsync(HttpRequest request, VmManager manager, Cluster.ClusterService cluster, CancellationToken ct)
    {
        if (cluster.WitnessRefusal() is { } witness)
        {
            return ApiResults.Problem(witness);
        }

        return (await JsonBody.ReadAsync<VmSpec>(request, "VM spec", ct)).TryGetValue(out var spec, out var error)
            ? ApiResults.From(await manager.CreateAsync(spec, ct), StatusCodes.Status201Created)
            : ApiResults.Problem(error);
    }

    /// <summary>The serial console's log; with follow, new output as it comes until the client leaves.</summary>
    private static async Task ConsoleAsync(HttpContext context, string name, bool? follow, long? tail, VmManager manager, CancellationToken ct)
    {
        if (!manager.SerialLogOf(name).TryGetValue(out var path, out var error))
        {
            await ApiResults.Problem(error).ExecuteAsync(context);
            return;
        }

        context.Response.ContentType = "text/plain; charset=utf-8";
        await context.Response.StartAsync(ct);
        long position = 0;
        if (File.Exists(path) && tail is > 0)
        {
            position = Math.Max(0, new FileInfo(path).Length - tail.Value);
        }

        try
        {
            do
            {
                position = await CopyFromAsync(path, position, context.Response.Body, ct);
                await context.Response.Body.FlushAsync(ct);
                if (follow == true)
                {
                    await Task.Delay(FollowPollInterval, ct);
                }
            }
            while (follow == true);
        }
        catch (OperationCanceledException)
        {
            // The client went away.
        }
    }

    private static async Task<long> CopyFromAsync(string path, long position, Stream destination, CancellationToken ct)
    {
        if (!File.Exists(path))
        {
            return position;
        }

        await using var log = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        if (log.Length < position)
        {
            position = 0; // The log was replaced.
        }

        log.Position = position;
        await log.CopyToAsync(destination, ct);
        return log.Position;
    }

    /// <summary>Past events as a JSON array; with follow, one JSON object per line as they happen.</summary>
    private static async Task EventsAsync(HttpContext context, string? vm, bool? follow, EventLog events, CancellationToken ct)
    {
        if (follow != true)
        {
            await Results.Json(events.Query(vm), FerryJson.Options).ExecuteAsync(context);
            return;
        }

        context.Response.ContentType = "application/x-ndjson";
        await context.Response.StartAsync(ct);
        try
        {
            await foreach (var e in events.FollowAsync(vm, ct))
            {
                await JsonSerializer.SerializeAsync(context.Response.Body, e, FerryJson.Options, ct);
                await context.Response.Body.WriteAsync("\n"u8.ToArray(), ct);
                await context.Response.Body.FlushAsync(ct);
            }
        }
        catch (OperationCanceledException)
        {
            // The client went away.
        }
    }
}
