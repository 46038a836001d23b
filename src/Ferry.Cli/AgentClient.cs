using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Ferry.Agent.Api;
using Ferry.Agent.Events;
using Ferry.Agent.Vms;
using Ferry.Cluster.Reconcile;
using Ferry.Cluster.State;
using Ferry.Hypervisor;
using Ferry.Storage.Volumes;

namespace Ferry.Cli;

/// <summary>The CLI's side of the REST API: every call returns a result whose error is the agent's one-line reason.</summary>
public sealed class AgentClient : IDisposable
{
    private readonly HttpClient _http;
    private readonly Uri _server;
    private bool? _clustered;

    public AgentClient(Uri server)
    {
        _server = server;
        _http = new HttpClient { BaseAddress = server, Timeout = Timeout.InfiniteTimeSpan };
    }

    /// <summary>Whether the agent is in a cluster, asked once: then VMs and volumes are the cluster's, on any of its hosts.</summary>
    public async Task<bool> IsClusteredAsync(CancellationToken ct)
    {
        _clustered ??= (await SendAsync<HealthView>(HttpMethod.Get, "api/v1/health", null, ct).ConfigureAwait(false)) is { IsOk: true, Value.Cluster: not null };
        return _clustered.Value;
    }

    public async Task<Result<VmView[]>> ListVmsAsync(CancellationToken ct) =>
        await SendAsync<VmView[]>(HttpMethod.Get, await VmsAsync(ct).ConfigureAwait(false), null, ct).ConfigureAwait(false);

    public async Task<Result<VmView>> GetVmAsync(string name, CancellationToken ct) =>
        await SendAsync<VmView>(HttpMethod.Get, $"{await VmsAsync(ct).ConfigureAwait(false)}/{Uri.EscapeDataString(name)}", null, ct).ConfigureAwait(false);

    /// <param name="query">Cluster VMs only: ?max-restarts=N&amp;max-relocations=M.</param>
    public async Task<Result<VmView>> CreateVmAsync(VmSpec spec, CancellationToken ct, string query = "") =>
        await SendAsync<VmView>(HttpMethod.Post, await VmsAsync(ct).ConfigureAwait(false) + query, spec, ct).ConfigureAwait(false);

    /// <summary>start and stop go through the cluster when there is one; restart, pause and resume act on this host's QEMU.</summary>
    public async Task<Result<VmView>> VmActionAsync(string name, string action, CancellationToken ct, string query = "")
    {
        var vms = action is "start" or "stop" or "migrate" ? await VmsAsync(ct).ConfigureAwait(false) : "api/v1/vms";
        if (action == "migrate" && vms == "api/v1/vms")
        {
            return FerryError.WrongState("live migration moves a VM between the hosts of a cluster, and this agent is in none (see: ferry cluster init)");
        }

        return await SendAsync<VmView>(HttpMethod.Post, $"{vms}/{Uri.EscapeDataString(name)}/{action}{query}", null, ct).ConfigureAwait(false);
    }

    public async Task<FerryError?> DeleteVmAsync(string name, CancellationToken ct) =>
        (await SendAsync<JsonElement?>(HttpMethod.Delete, $"{await VmsAsync(ct).ConfigureAwait(false)}/{Uri.EscapeDataString(name)}", null, ct).ConfigureAwait(false)).Error;

    public Task<Result<ClusterVolumeView[]>> ListClusterVolumesAsync(CancellationToken ct) => SendAsync<ClusterVolumeView[]>(HttpMethod.Get, "api/v1/cluster/volumes", null, ct);

    public Task<Result<ClusterVolumeView>> GetClusterVolumeAsync(string name, CancellationToken ct) =>
        SendAsync<ClusterVolumeView>(HttpMethod.Get, $"api/v1/cluster/volumes/{Uri.EscapeDataString(name)}", null, ct);

    public Task<Result<ClusterVolumeView>> CreateClusterVolumeAsync(ClusterVolumeRequest request, CancellationToken ct) =>
        SendAsync<ClusterVolumeView>(HttpMethod.Post, "api/v1/cluster/volumes", request, ct);

    public Task<Result<ClusterVolumeView>> PromoteClusterVolumeAsync(string name, ClusterPromoteRequest request, CancellationToken ct) =>
        SendAsync<ClusterVolumeView>(HttpMethod.Post, $"api/v1/cluster/volumes/{Uri.EscapeDataString(name)}/promote", request, ct);

    public async Task<FerryError?> DeleteClusterVolumeAsync(string name, CancellationToken ct) =>
        (await SendAsync<JsonElement?>(HttpMethod.Delete, $"api/v1/cluster/volumes/{Uri.EscapeDataString(name)}", null, ct).ConfigureAwait(false)).Error;

    public Task<Result<VolumeInfo[]>> ListVolumesAsync(CancellationToken ct) => SendAsync<VolumeInfo[]>(HttpMethod.Get, "api/v1/volumes", null, ct);

    public Task<Result<VolumeInfo>> GetVolumeAsync(string name, CancellationToken ct) =>
        SendAsync<VolumeInfo>(HttpMethod.Get, $"api/v1/volumes/{Uri.EscapeDataString(name)}", null, ct);

    public Task<Result<VolumeInfo>> CreateVolumeAsync(CreateVolumeRequest request, CancellationToken ct) =>
        SendAsync<VolumeInfo>(HttpMethod.Post, "api/v1/volumes", request, ct);

    public Task<Result<VolumeInfo>> ReplicateVolumeAsync(string name, ReplicationRequest request, CancellationToken ct) =>
        SendAsync<VolumeInfo>(HttpMethod.Put, $"api/v1/volumes/{Uri.EscapeDataString(name)}/replication", request, ct);

    /// <summary>promote, demote, resolve, connect, disconnect.</summary>
    public Task<Result<T>> VolumeActionAsync<T>(string name, string action, object? request, CancellationToken ct) =>
        SendAsync<T>(HttpMethod.Post, $"api/v1/volumes/{Uri.EscapeDataString(name)}/{action}", request, ct);

    public Task<Result<VolumeInfo>> ResizeVolumeAsync(string name, ResizeVolumeRequest request, CancellationToken ct) =>
        SendAsync<VolumeInfo>(HttpMethod.Post, $"api/v1/volumes/{Uri.EscapeDataString(name)}/resize", request, ct);

    public async Task<FerryError?> DeleteVolumeAsync(string name, CancellationToken ct) =>
        (await SendAsync<JsonElement?>(HttpMethod.Delete, $"api/v1/volumes/{Uri.EscapeDataString(name)}", null, ct).ConfigureAwait(false)).Error;

    public Task<Result<FerryEvent[]>> EventsAsync(string? vm, CancellationToken ct) =>
        SendAsync<FerryEvent[]>(HttpMethod.Get, "api/v1/events" + (vm is null ? string.Empty : $"?vm={Uri.EscapeDataString(vm)}"), null, ct);

    public Task<Result<ClusterStatusView>> InitClusterAsync(InitClusterRequest request, CancellationToken ct) =>
        SendAsync<ClusterStatusView>(HttpMethod.Post, "api/v1/cluster/init", request, ct);

    public Task<Result<JoinTokenView>> JoinTokenAsync(JoinTokenRequest request, CancellationToken ct) =>
        SendAsync<JoinTokenView>(HttpMethod.Post, "api/v1/cluster/join-tokens", request, ct);

    public Task<Result<ClusterStatusView>> JoinClusterAsync(JoinClusterRequest request, CancellationToken ct) =>
        SendAsync<ClusterStatusView>(HttpMethod.Post, "api/v1/cluster/join", request, ct);

    public Task<Result<ClusterStatusView>> ClusterStatusAsync(bool local, CancellationToken ct) =>
        SendAsync<ClusterStatusView>(HttpMethod.Get, "api/v1/cluster/status" + (local ? "?local=true" : ""), null, ct);

    public Task<Result<ClusterEvent[]>> ClusterEventsAsync(CancellationToken ct) => SendAsync<ClusterEvent[]>(HttpMethod.Get, "api/v1/cluster/events", null, ct);

    /// <summary>Sets a host's fence agent, or removes it when <paramref name="request"/> is null.</summary>
    public Task<Result<ClusterStatusView>> SetFenceAgentAsync(string host, FenceAgentRequest? request, CancellationToken ct) =>
        SendAsync<ClusterStatusView>(request is null ? HttpMethod.Delete : HttpMethod.Put, $"api/v1/cluster/hosts/{Uri.EscapeDataString(host)}/fence-agent", request, ct);

    public Task<Result<ClusterStatusView>> SetMaintenanceAsync(string host, bool on, CancellationToken ct) =>
        SendAsync<ClusterStatusView>(HttpMethod.Post, $"api/v1/cluster/hosts/{Uri.EscapeDataString(host)}/{(on ? "drain" : "undrain")}", null, ct);

    public Task<Result<ClusterStatusView>> SetClusterSettingsAsync(ClusterSettingsRequest request, CancellationToken ct) =>
        SendAsync<ClusterStatusView>(HttpMethod.Put, "api/v1/cluster/settings", request, ct);

    public Task<Result<Risk[]>> VerifyClusterAsync(CancellationToken ct) => SendAsync<Risk[]>(HttpMethod.Get, "api/v1/cluster/verify", null, ct);

    public Task<Result<ClusterStatusView>> RemoveHostAsync(string name, bool force, CancellationToken ct) =>
        SendAsync<ClusterStatusView>(HttpMethod.Delete, $"api/v1/cluster/hosts/{Uri.EscapeDataString(name)}" + (force ? "?force=true" : ""), null, ct);

    /// <summary>Opens a streaming GET (console, followed events); the caller reads and disposes the stream.</summary>
    public async Task<Result<Stream>> OpenStreamAsync(string path, CancellationToken ct)
    {
        try
        {
            var response = await _http.GetAsync(path, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                using (response)
                {
                    return await ErrorOfAsync(response, ct).ConfigureAwait(false);
                }
            }

            return await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            return Unreachable(e);
        }
    }

    public static async IAsyncEnumerable<FerryEvent> FollowEventsAsync(Stream stream, [EnumeratorCancellation] CancellationToken ct)
    {
        using var reader = new StreamReader(stream);
        while (await reader.ReadLineAsync(ct).ConfigureAwait(false) is { } line)
        {
            if (line.Length > 0 && JsonSerializer.Deserialize<FerryEvent>(line, FerryJson.Options) is { } e)
            {
                yield return e;
            }
        }
    }

    private async Task<string> VmsAsync(CancellationToken ct) => await IsClusteredAsync(ct).ConfigureAwait(false) ? "api/v1/cluster/vms" : "api/v1/vms";

    private async Task<Result<T>> SendAsync<T>(HttpMethod method, string path, object? body, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, path);
        if (body is not null)
        {
            request.Content = JsonContent.Create(body, body.GetType(), options: FerryJson.Options);
        }

        try
        {
            using var response = await _http.SendAsync(request, ct).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                return await ErrorOfAsync(response, ct).ConfigureAwait(false);
            }

            if (response.StatusCode == HttpStatusCode.NoContent)
            {
                return Result<T>.Ok(default!);
            }

            var value = await response.Content.ReadFromJsonAsync<T>(FerryJson.Options, ct).ConfigureAwait(false);
            return value is null ? FerryError.Unavailable($"the agent at {_server} sent an empty answer") : Result<T>.Ok(value);
        }
        catch (HttpRequestException e)
        {
            return Unreachable(e);
        }
        catch (JsonException e)
        {
            return FerryError.Unavailable($"the agent at {_server} sent an answer this CLI cannot read: {e.Message}");
        }
    }

    private FerryError Unreachable(HttpRequestException e)
    {
        var why = e.InnerException is SocketException s ? s.SocketErrorCode.ToString() : e.Message;
        return FerryError.Unavailable($"cannot reach the agent at {_server}: {why} (is 'ferry agent' running? see --server)");
    }

    /// <summary>Reads the agent's problem document; its "code" names the kind of error.</summary>
    private static async Task<FerryError> ErrorOfAsync(HttpResponseMessage response, CancellationToken ct)
    {
        var text = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
        try
        {
            using var problem = JsonDocument.Parse(text);
            var root = problem.RootElement;
            var detail = root.TryGetProperty("detail", out var d) ? d.GetString() : null;
            var code = root.TryGetProperty("code", out var c) && Enum.TryParse<ErrorCode>(c.GetString(), out var parsed)
                ? parsed
                : CodeOf(response.StatusCode);
            return new FerryError(code, detail ?? $"the agent answered {(int)response.StatusCode} {response.ReasonPhrase}");
        }
        catch (JsonException)
        {
            return new FerryError(CodeOf(response.StatusCode), $"the agent answered {(int)response.StatusCode} {response.ReasonPhrase}");
        }
    }

    private static ErrorCode CodeOf(HttpStatusCode status) => status switch
    {
        HttpStatusCode.BadRequest => ErrorCode.InvalidArgument,
        HttpStatusCode.NotFound => ErrorCode.NotFound,
        HttpStatusCode.Conflict => ErrorCode.Conflict,
        HttpStatusCode.ServiceUnavailable or HttpStatusCode.BadGateway or HttpStatusCode.GatewayTimeout => ErrorCode.Unavailable,
        _ => ErrorCode.Internal,
    };

    public void Dispose() => _http.Dispose();
}
