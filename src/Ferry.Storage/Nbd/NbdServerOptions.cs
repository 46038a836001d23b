using System.Security.Cryptography.X509Certificates;

namespace Ferry.Storage.Nbd;

/// <summary>Settings of an <see cref="NbdServer"/>.</summary>
public sealed record NbdServerOptions
{
    /// <summary>Server certificate (with private key) offered through NBD_OPT_STARTTLS; without one, STARTTLS is refused.</summary>
    public X509Certificate2? TlsCertificate { get; init; }

    /// <summary>Refuse every option but STARTTLS and ABORT until TLS is up (proto.md "FORCEDTLS mode"). Needs <see cref="TlsCertificate"/>.</summary>
    public bool RequireTls { get; init; }

    /// <summary>
    /// Requests one connection may have in flight, from parsing until the reply is sent; the reader stops reading
    /// while all are taken. Bounds a connection's buffers at this many times the 32 MiB maximum payload.
    /// </summary>
    public int MaxRequestsInFlight { get; init; } = 16;

    /// <summary>How long a client may take to finish option haggling.</summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(30);
}
