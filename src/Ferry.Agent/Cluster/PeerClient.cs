using System.Net.Http.Json;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Ferry.Cluster.Security;

namespace Ferry.Agent.Cluster;

/// <summary>
/// Calls to other hosts' peer APIs over HTTPS. With credentials both ends authenticate against the
/// cluster authority; while joining, the authority comes from the token's fingerprint instead.
/// </summary>
internal sealed class PeerClient : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private readonly HttpClient _http;

    private PeerClient(RemoteCertificateValidationCallback validate, X509Certificate2? clientCertificate)
    {
        var handler = new SocketsHttpHandler
        {
            ConnectTimeout = TimeSpan.FromSeconds(5),
            SslOptions = new SslClientAuthenticationOptions
            {
                RemoteCertificateValidationCallback = validate,
                ClientCertificates = clientCertificate is null ? null : [clientCertificate],
                CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            },
        };
        _http = new HttpClient(handler) { Timeout = Timeout };
    }

    /// <summary>A member's client: presents the host certificate, trusts only the cluster authority.</summary>
    public static PeerClient ForMember(ClusterCredentials credentials) =>
        new((_, remote, _, _) => remote is X509Certificate2 peer && ClusterAuthority.Chains(peer, credentials.Authority), credentials.Host);

    /// <summary>A joining host's client once it holds the authority (checked against the token): no certificate of its own yet.</summary>
    public static PeerClient ForJoining(X509Certificate2 authority) =>
        new((_, remote, _, _) => remote is X509Certificate2 peer && ClusterAuthority.Chains(peer, authority), null);

    /// <summary>Only to fetch the authority's certificate, which is checked against the token's fingerprint before any use.</summary>
#pragma warning disable CA5359 // Nothing is sent but the request for the authority, and what comes back is trusted only if its fingerprint is the token's.
    public static PeerClient Unverified() => new((_, _, _, _) => true, null);
#pragma warning restore CA5359

    /// <summary>A request body as <typeparamref name="TBody"/> declares it (a command keeps its type discriminator).</summary>
    public static HttpContent Body<TBody>(TBody body) => JsonContent.Create(body, options: FerryJson.Options);

    public async Task<Result<T>> SendAsync<T>(HttpMethod method, Uri uri, HttpContent? body, CancellationToken ct)
    {
        try
        {
            using var request = new HttpRequestMessage(method, uri) { Content = body };
            using var response = await _http.SendAsync(request, ct).ConfigureAwait(false);
            if (response.IsSuccessStatusCode)
            {
                return await response.Content.ReadFromJsonAsync<T>(FerryJson.Options, ct).ConfigureAwait(false) is { } value
                    ? value
                    : FerryError.Unavailable($"{uri.Authority} answered with nothing");
            }

            var problem = await response.Content.ReadFromJsonAsync<ProblemDocument>(FerryJson.Options, ct).ConfigureAwait(false);
            var code = Enum.TryParse<ErrorCode>(problem?.Code, out var parsed) ? parsed : ErrorCode.Unavailable;
            return new FerryError(code, problem?.Detail ?? $"{uri.Authority} answered {(int)response.StatusCode}");
        }
        catch (HttpRequestException e)
        {
            return FerryError.Unavailable($"cannot reach {uri.Authority}: {e.InnerException?.Message ?? e.Message}");
        }
        catch (TaskCanceledException) when (!ct.IsCancellationRequested)
        {
            return FerryError.Unavailable($"{uri.Authority} did not answer within {Timeout.TotalSeconds:0} s");
        }
        catch (System.Text.Json.JsonException e)
        {
            return FerryError.Unavailable($"{uri.Authority} answered something that is not Ferry's: {e.Message}");
        }
    }

    public void Dispose() => _http.Dispose();

    private sealed record ProblemDocument(string? Detail, string? Code);
}
