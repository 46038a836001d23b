using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Ferry.Storage.Replication.Wire;

namespace Ferry.Agent.Volumes;

/// <summary>
/// TLS for replication links, both ways authenticated: each end presents its host's certificate and
/// accepts only a peer whose certificate chains to the cluster's certificate authority, and a primary
/// also checks that the copy it dialled holds a certificate for that host's name. Without it a link is
/// plain TCP, and anyone who can reach the port with a current epoch could take it over.
/// </summary>
internal sealed class ReplicationTls : IDisposable
{
    public static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(10);

    private readonly X509Certificate2 _certificate;
    private readonly X509Certificate2Collection _authority;
    private readonly SslStreamCertificateContext _context;
    private readonly Func<X509Certificate2, bool>? _admits;
    private readonly bool _ownsCertificates;

    private ReplicationTls(X509Certificate2 certificate, X509Certificate2Collection authority, Func<X509Certificate2, bool>? admits = null, bool ownsCertificates = true)
    {
        _certificate = certificate;
        _authority = authority;
        _admits = admits;
        _ownsCertificates = ownsCertificates;
        _context = SslStreamCertificateContext.Create(certificate, additionalCertificates: null, offline: true);
    }

    /// <summary>
    /// Links between hosts of a cluster: this host's cluster certificate, the cluster's authority, and
    /// only peers that <paramref name="admits"/> (hosts of the cluster now, not removed ones).
    /// The certificates stay the cluster membership's.
    /// </summary>
    public static ReplicationTls ForCluster(X509Certificate2 host, X509Certificate2 authority, Func<X509Certificate2, bool> admits) =>
        new(host, [authority], admits, ownsCertificates: false);

    public bool Uses(X509Certificate2 certificate) => ReferenceEquals(_certificate, certificate);

    /// <summary>Null when the options ask for plain links; a clear error when they ask for TLS only in part.</summary>
    public static ReplicationTls? FromOptions(AgentOptions options)
    {
        if (options.ReplicationTlsCertificate is null && options.ReplicationTlsAuthority is null)
        {
            return null;
        }

        if (options.ReplicationTlsCertificate is not { } cert || options.ReplicationTlsAuthority is not { } ca)
        {
            throw new ArgumentException(
                "replication over TLS needs both this host's certificate (--replication-tls-cert, with --replication-tls-key unless the key is in it) " +
                "and the certificate authority peers' certificates must chain to (--replication-tls-ca)");
        }

        var authority = new X509Certificate2Collection();
        authority.ImportFromPemFile(ca);
        if (authority.Count == 0)
        {
            throw new ArgumentException($"'{ca}' holds no PEM certificate");
        }

        return new ReplicationTls(X509Certificate2.CreateFromPemFile(cert, options.ReplicationTlsKey), authority);
    }

    /// <summary>The primary's end: the copy on <paramref name="peerHost"/> must prove it is that host.</summary>
    public Task<Stream> ClientAsync(Stream inner, string peerHost, CancellationToken ct) =>
        AuthenticateAsync(
            inner,
            (tls, timeout) => tls.AuthenticateAsClientAsync(
                new SslClientAuthenticationOptions
                {
                    TargetHost = peerHost,
                    ClientCertificateContext = _context,
                    CertificateChainPolicy = ChainPolicy(),
                    RemoteCertificateValidationCallback = Admit,
                    EnabledSslProtocols = SslProtocols.Tls13,
                },
                timeout),
            $"TLS with {peerHost} failed",
            ct);

    /// <summary>The copy's end: the primary must present a certificate of this cluster.</summary>
    public Task<Stream> ServerAsync(Stream inner, CancellationToken ct) =>
        AuthenticateAsync(
            inner,
            (tls, timeout) => tls.AuthenticateAsServerAsync(
                new SslServerAuthenticationOptions
                {
                    ServerCertificateContext = _context,
                    ClientCertificateRequired = true,
                    CertificateChainPolicy = ChainPolicy(),
                    RemoteCertificateValidationCallback = Admit,
                    EnabledSslProtocols = SslProtocols.Tls13,
                },
                timeout),
            "TLS handshake failed",
            ct);

    /// <summary>Runs one end's handshake within <see cref="HandshakeTimeout"/>; a refused or stalled peer becomes an IOException.</summary>
    private static async Task<Stream> AuthenticateAsync(Stream inner, Func<SslStream, CancellationToken, Task> handshake, string failure, CancellationToken ct)
    {
        var tls = new LinkTlsStream(inner);
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(HandshakeTimeout);
            await handshake(tls, timeout.Token).ConfigureAwait(false);
            return tls;
        }
        catch (Exception e) when (e is AuthenticationException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            await tls.DisposeAsync().ConfigureAwait(false);
            throw new IOException($"{failure}: {e.Message}", e);
        }
        catch
        {
            await tls.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The chain (and, for a client, the name) checked by the policy; then, in a cluster, membership.</summary>
    private bool Admit(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors) =>
        errors == SslPolicyErrors.None && (_admits is null || certificate is X509Certificate2 peer && _admits(peer));

    // Only the cluster's authority is trusted, not the machine's store; cluster certificates carry no revocation endpoints.
    private X509ChainPolicy ChainPolicy()
    {
        var policy = new X509ChainPolicy
        {
            TrustMode = X509ChainTrustMode.CustomRootTrust,
            RevocationMode = X509RevocationMode.NoCheck,
        };
        policy.CustomTrustStore.AddRange(_authority);
        return policy;
    }

    public void Dispose()
    {
        if (!_ownsCertificates)
        {
            return;
        }

        _certificate.Dispose();
        foreach (var certificate in _authority)
        {
            certificate.Dispose();
        }
    }
}

/// <summary>A link's TLS stream that tells which TCP socket it runs on (the primary watches what the peer acknowledged there).</summary>
internal sealed class LinkTlsStream(Stream inner) : SslStream(inner, leaveInnerStreamOpen: false), ISocketLink
{
    public Socket? Socket => InnerStream is ISocketLink link ? link.Socket : (InnerStream as NetworkStream)?.Socket;
}
