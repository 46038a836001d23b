using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Ferry.Cluster.Security;
using Ferry.Cluster.State;

namespace Ferry.Agent.Cluster;

/// <summary>Who this host is in its cluster, as written at init or join.</summary>
/// <param name="First">This host created the cluster: it alone may start as a consensus group of one.</param>
/// <param name="JoinedAt">When this membership began: the host's record in the state carries the same time, which tells
/// it apart from an earlier membership of the same name (replayed from the log when a removed host joins again).</param>
public sealed record ClusterIdentity(Guid ClusterId, string ClusterName, string HostName, HostRole Role, bool First, DateTimeOffset JoinedAt);

/// <summary>The cluster's authority and this host's certificate, as loaded from the data directory.</summary>
internal sealed class ClusterCredentials(X509Certificate2 authority, X509Certificate2 host) : IDisposable
{
    /// <summary>The cluster authority, with its private key: every member can sign a joining host's certificate.</summary>
    public X509Certificate2 Authority { get; } = authority;

    public X509Certificate2 Host { get; } = host;

    public string Fingerprint => ClusterAuthority.Fingerprint(Authority);

    public void Dispose()
    {
        Authority.Dispose();
        Host.Dispose();
    }
}

/// <summary>
/// The files of a host's cluster membership under DATA/cluster: identity, the authority's certificate and
/// key, the host's certificate and key, and the consensus log. Written once, at init or join.
/// </summary>
internal sealed class ClusterFiles(string dataDirectory)
{
    public string Directory { get; } = Path.Combine(dataDirectory, "cluster");

    public string ConsensusDirectory => Path.Combine(Directory, "consensus");

    private string IdentityFile => Path.Combine(Directory, "identity.json");

    private string AuthorityCertificate => Path.Combine(Directory, "ca.pem");

    private string AuthorityKey => Path.Combine(Directory, "ca-key.pem");

    private string HostCertificate => Path.Combine(Directory, "host.pem");

    private string HostKey => Path.Combine(Directory, "host-key.pem");

    public bool Exists => File.Exists(IdentityFile);

    public ClusterIdentity ReadIdentity() =>
        JsonSerializer.Deserialize<ClusterIdentity>(File.ReadAllBytes(IdentityFile), FerryJson.Options)
        ?? throw new InvalidDataException($"'{IdentityFile}' is empty");

    public ClusterCredentials ReadCredentials() => new(
        X509Certificate2.CreateFromPemFile(AuthorityCertificate, AuthorityKey),
        X509Certificate2.CreateFromPemFile(HostCertificate, HostKey));

    /// <summary>Writes everything, identity last: a host that crashed half way is still not in a cluster.</summary>
    public async Task WriteAsync(ClusterIdentity identity, string authorityPem, string authorityKeyPem, string hostPem, ECDsa hostKey, CancellationToken ct)
    {
        if (!OperatingSystem.IsLinux())
        {
            throw new PlatformNotSupportedException("Ferry runs on Linux");
        }

        // Keys live here: only root reads the directory.
        System.IO.Directory.CreateDirectory(Directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        await DurableFile.WriteAllBytesAsync(AuthorityCertificate, System.Text.Encoding.ASCII.GetBytes(authorityPem), ct).ConfigureAwait(false);
        await WriteSecretAsync(AuthorityKey, authorityKeyPem, ct).ConfigureAwait(false);
        await DurableFile.WriteAllBytesAsync(HostCertificate, System.Text.Encoding.ASCII.GetBytes(hostPem), ct).ConfigureAwait(false);
        await WriteSecretAsync(HostKey, hostKey.ExportPkcs8PrivateKeyPem(), ct).ConfigureAwait(false);
        await DurableFile.WriteAllBytesAsync(IdentityFile, JsonSerializer.SerializeToUtf8Bytes(identity, FerryJson.Options), ct).ConfigureAwait(false);
    }

    /// <summary>After removal from the cluster: the membership is set aside (not deleted), so the host can join again.</summary>
    public void SetAside(DateTimeOffset now)
    {
        if (System.IO.Directory.Exists(Directory))
        {
            System.IO.Directory.Move(Directory, $"{Directory}.removed-{now:yyyyMMddTHHmmss}");
        }
    }

    private static Task WriteSecretAsync(string path, string pem, CancellationToken ct) =>
        DurableFile.WriteAllBytesAsync(path, System.Text.Encoding.ASCII.GetBytes(pem), ct);
}
