using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace Ferry.Agent.Api;

/// <summary>Reads a request body so that malformed JSON becomes a one-line 400, not an empty one.</summary>
internal static class JsonBody
{
    public static async Task<Result<T>> ReadAsync<T>(HttpRequest request, string what, CancellationToken ct)
        where T : class
    {
        try
        {
            return await JsonSerializer.DeserializeAsync<T>(request.Body, FerryJson.Options, ct) is { } value
                ? value
                : FerryError.InvalidArgument($"invalid {what}: the body is empty");
        }
        catch (Exception e) when (e is JsonException or NotSupportedException)
        {
            return FerryError.InvalidArgument($"invalid {what}: {e.Message}");
        }
    }

    /// <summary>Reads the body, hands it to <paramref name="handle"/>, and answers with its result (or the body's error).</summary>
    public static async Task<IResult> HandleAsync<TBody, TResult>(
        HttpRequest request, string what, Func<TBody, Task<Result<TResult>>> handle, CancellationToken ct, int successStatus = StatusCodes.Status200OK)
        where TBody : class =>
        (await ReadAsync<TBody>(request, what, ct)).TryGetValue(out var body, out var error)
            ? ApiResults.From(await handle(body), successStatus)
            : ApiResults.Problem(error);
}
