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

    private static async Task<IResult> CreateAsync(HttpRequest request, VolumeStore store, CancellationToken ct) =>
        (await JsonBody.ReadAsync<CreateVolumeRequest>(request, "volume request", ct)).TryGetValue(out var body, out var error)
            ? ApiResults.From(await store.CreateAsync(body.Name, body.Size, ct), StatusCodes.Status201Created)
            : ApiResults.Problem(error);

    private static async Task<IResult> ResizeAsync(string name, HttpRequest request, VolumeStore store, CancellationToken ct) =>
        (await JsonBody.ReadAsync<ResizeVolumeRequest>(request, "resize request", ct)).TryGetValue(out var body, out var error)
            ? ApiResults.From(await store.ResizeAsync(name, body.Size, body.Shrink, ct))
            : ApiResults.Problem(error);

    /// <summary>A volume a VM uses is not deleted under it.</summary>
    private static async Task<IResult> DeleteAsync(string name, VolumeStore store, VmManager vms, CancellationToken ct)
    {
        if (vms.UsersOf(name) is [var first, ..] users)
        {
            return ApiResults.Problem(FerryError.WrongState(
                $"cannot delete volume '{name}': VM{(users.Count > 1 ? "s" : string.Empty)} {string.Join(", ", users.Select(u => $"'{u}'"))} use{(users.Count > 1 ? string.Empty : "s")} it (delete {(users.Count > 1 ? "them" : $"'{first}'")} first)"));
        }

        return await store.DeleteAsync(name, ct) is { } error ? ApiResults.Problem(error) : Results.NoContent();
    }
}
