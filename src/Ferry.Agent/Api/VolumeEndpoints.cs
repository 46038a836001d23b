using Ferry.Agent.Events;
using Ferry.Agent.Vms;
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
        volumes.MapGet("/", async (VolumeStore store, CancellationToken ct) => Results.Json(await store.ListAsync(ct), FerryJson.Options)).Produces<VolumeInfo[]>();
        volumes.MapPost("/", CreateAsync).Accepts<CreateVolumeRequest>("application/json").Produces<VolumeInfo>(StatusCodes.Status201Created);
        volumes.MapGet("/{name}", async (string name, VolumeStore store, CancellationToken ct) => ApiResults.From(await store.InfoAsync(name, ct))).Produces<VolumeInfo>();
        volumes.MapPost("/{name}/resize", ResizeAsync).Accepts<ResizeVolumeRequest>("application/json").Produces<VolumeInfo>();
        volumes.MapDelete("/{name}", DeleteAsync);
    }

    private static async Task<IResult> CreateAsync(HttpRequest request, VolumeStore store, EventLog events, CancellationToken ct)
    {
        if (!(await JsonBody.ReadAsync<CreateVolumeRequest>(request, "volume request", ct)).TryGetValue(out var body, out var error))
        {
            return ApiResults.Problem(error);
        }

        var created = await store.CreateAsync(body.Name, body.Size, ct);
        if (created.IsOk)
        {
            events.Append("volume.created", null, $"volume '{body.Name}' created, {body.Size} bytes");
        }

        return ApiResults.From(created, StatusCodes.Status201Created);
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
    private static async Task<IResult> DeleteAsync(string name, VolumeStore store, VmManager vms, EventLog events, CancellationToken ct)
    {
        if (vms.UsersOf(name) is [var first, ..] users)
        {
            return ApiResults.Problem(FerryError.WrongState(
                $"cannot delete volume '{name}': VM{(users.Count > 1 ? "s" : string.Empty)} {string.Join(", ", users.Select(u => $"'{u}'"))} use{(users.Count > 1 ? string.Empty : "s")} it (delete {(users.Count > 1 ? "them" : $"'{first}'")} first)"));
        }

        if (await store.DeleteAsync(name, ct) is { } error)
        {
            return ApiResults.Problem(error);
        }

        events.Append("volume.deleted", null, $"volume '{name}' deleted");
        return Results.NoContent();
    }
}
