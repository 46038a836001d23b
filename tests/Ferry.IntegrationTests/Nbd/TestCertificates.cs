using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Ferry.IntegrationTests.Nbd;

/// <summary>Certificates for TLS tests: a self-signed one for localhost that is its own CA, or a cluster CA and host certificates it issues.</summary>
internal static class TestCertificates
{
    public static X509Certificate2 SelfSigned()
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName("localhost");
        san.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: true, hasPathLengthConstraint: false, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment | X509KeyUsageFlags.KeyCertSign, critical: true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], critical: false));
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(1));
        return X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null);
    }

    /// <summary>Writes the certificate and its key as PEM files, and the certificate again as ca-cert.pem in a pki directory (libnbd and QEMU look for that name).</summary>
    public static (string Certificate, string Key, string PkiDirectory) WritePem(X509Certificate2 certificate, string directory)
    {
        var pki = Path.Combine(directory, "pki");
        Directory.CreateDirectory(pki);
        var cert = Path.Combine(directory, "cert.pem");
        var key = Path.Combine(directory, "key.pem");
        File.WriteAllText(cert, certificate.ExportCertificatePem());
        File.WriteAllText(key, certificate.GetRSAPrivateKey()!.ExportPkcs8PrivateKeyPem());
        File.WriteAllText(Path.Combine(pki, "ca-cert.pem"), certificate.ExportCertificatePem());
        return (cert, key, pki);
    }

    /// <summary>A certificate authority, as a cluster would have one.</summary>
    public static X509Certificate2 Authority(string name)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: true, hasPathLengthConstraint: false, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, critical: true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(1));
    }

    /// <summary>A host's certificate from <paramref name="authority"/>, naming the host, good for both ends of a link.</summary>
    public static X509Certificate2 Host(X509Certificate2 authority, string host)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={host}", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(host);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: false, hasPathLengthConstraint: false, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, critical: true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], critical: false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(authority, includeKeyIdentifier: true, includeIssuerAndSerial: false));
        var serial = RandomNumberGenerator.GetBytes(12);
        using var issued = request.Create(authority, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddMinutes(50), serial);
        return issued.CopyWithPrivateKey(key);
    }

    /// <summary>Writes a certificate (and its EC key, if it has one) as PEM files named after <paramref name="name"/>; returns their paths.</summary>
    public static (string Certificate, string Key) WritePem(X509Certificate2 certificate, string directory, string name)
    {
        var cert = Path.Combine(directory, name + ".pem");
        var key = Path.Combine(directory, name + "-key.pem");
        File.WriteAllText(cert, certificate.ExportCertificatePem());
        if (certificate.GetECDsaPrivateKey() is { } ec)
        {
            File.WriteAllText(key, ec.ExportPkcs8PrivateKeyPem());
            ec.Dispose();
        }

        return (cert, key);
    }
}
