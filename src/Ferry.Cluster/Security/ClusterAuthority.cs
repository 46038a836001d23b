using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Ferry.Cluster.Security;

/// <summary>
/// The cluster's certificate authority: made at `cluster init`, it signs a certificate for every host
/// that joins. Hosts trust only certificates that chain to it.
/// </summary>
public static class ClusterAuthority
{
    private static readonly Oid ServerAuth = new("1.3.6.1.5.5.7.3.1");
    private static readonly Oid ClientAuth = new("1.3.6.1.5.5.7.3.2");

    public static readonly TimeSpan AuthorityLifetime = TimeSpan.FromDays(3650);
    public static readonly TimeSpan HostLifetime = TimeSpan.FromDays(825);

    /// <summary>A new authority for the cluster <paramref name="clusterName"/>, with its private key.</summary>
    public static X509Certificate2 Create(string clusterName, DateTimeOffset now)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN=Ferry cluster {clusterName}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: true, hasPathLengthConstraint: true, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, critical: true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));
        return request.CreateSelfSigned(now.AddMinutes(-5), now + AuthorityLifetime);
    }

    /// <summary>A key and a signing request naming <paramref name="hostName"/>: what a joining host sends.</summary>
    public static (ECDsa Key, string RequestPem) CreateRequest(string hostName)
    {
        var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={hostName}", key, HashAlgorithmName.SHA256);
        return (key, request.CreateSigningRequestPem());
    }

    /// <summary>
    /// Signs a host certificate for the key in <paramref name="requestPem"/>. Only the key is taken from
    /// the request: the name and uses are the authority's, so a request cannot ask for more.
    /// </summary>
    public static Result<string> Issue(X509Certificate2 authority, string requestPem, string hostName, DateTimeOffset now)
    {
        CertificateRequest received;
        try
        {
            received = CertificateRequest.LoadSigningRequestPem(requestPem, HashAlgorithmName.SHA256, CertificateRequestLoadOptions.Default);
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException)
        {
            return FerryError.InvalidArgument($"the certificate request is not a valid signed PEM request: {e.Message}");
        }

        var request = new CertificateRequest(new X500DistinguishedName($"CN={hostName}"), received.PublicKey, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(hostName);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: false, hasPathLengthConstraint: false, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, critical: true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([ServerAuth, ClientAuth], critical: false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(authority, includeKeyIdentifier: true, includeIssuerAndSerial: false));
        var notAfter = now + HostLifetime < authority.NotAfter ? now + HostLifetime : new DateTimeOffset(authority.NotAfter);
        using var issued = request.Create(authority, now.AddMinutes(-5), notAfter, RandomNumberGenerator.GetBytes(16));
        return issued.ExportCertificatePem();
    }

    /// <summary>The SHA-256 fingerprint of a certificate, lower-case hex: what a join token carries.</summary>
    public static string Fingerprint(X509Certificate2 certificate) => Convert.ToHexStringLower(certificate.GetCertHash(HashAlgorithmName.SHA256));

    /// <summary>The fingerprint of a PEM certificate, as <see cref="Issue"/> returns it.</summary>
    public static string Fingerprint(string certificatePem)
    {
        using var certificate = X509Certificate2.CreateFromPem(certificatePem);
        return Fingerprint(certificate);
    }

    /// <summary>A chain policy that trusts <paramref name="authority"/> alone, not the machine's store.</summary>
    public static X509ChainPolicy ChainPolicy(X509Certificate2 authority)
    {
        // Cluster certificates carry no revocation endpoints; a removed host is refused by name instead.
        var policy = new X509ChainPolicy
        {
            TrustMode = X509ChainTrustMode.CustomRootTrust,
            RevocationMode = X509RevocationMode.NoCheck,
        };
        policy.CustomTrustStore.Add(authority);
        return policy;
    }

    /// <summary>Whether <paramref name="certificate"/> was issued by <paramref name="authority"/> and is valid now.</summary>
    public static bool Chains(X509Certificate2 certificate, X509Certificate2 authority)
    {
        using var chain = new X509Chain { ChainPolicy = ChainPolicy(authority) };
        return chain.Build(certificate);
    }

    /// <summary>The host name a cluster certificate was issued to (its first DNS name).</summary>
    public static string? HostName(X509Certificate2 certificate) => certificate.GetNameInfo(X509NameType.DnsName, forIssuer: false);
}
