using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Ferry.Agent;
using Ferry.Agent.Volumes;
using Ferry.IntegrationTests.Nbd;

namespace Ferry.IntegrationTests.Replication;

/// <summary>
/// Replication links over TLS with the cluster's certificates: copies replicate, and a peer without TLS,
/// with a certificate from another authority, or holding another host's certificate is refused.
/// </summary>
public sealed class ReplicationTlsTests : IDisposable
{
    private readonly string _pki = Path.Combine(Path.GetTempPath(), "ferry-it-pki-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly X509Certificate2 _authority = TestCertificates.Authority("test cluster");
    private readonly X509Certificate2 _foreignAuthority = TestCertificates.Authority("another cluster");

    public ReplicationTlsTests() => Directory.CreateDirectory(_pki);

    public void Dispose()
    {
        _authority.Dispose();
        _foreignAuthority.Dispose();
        Directory.Delete(_pki, recursive: true);
    }

    [Fact]
    public async Task Copies_replicate_over_tls_and_a_plain_or_foreign_peer_is_refused()
    {
        await using var pair = await ReplicatedPair.StartAsync("16M", host => TlsArguments(host, _authority));

        await NbdTools.QemuIoAsync(ReplicatedPair.NbdUri(pair.A), "write -P 0x5a 0 1M", "write -P 0x6b 8M 64k");
        var written = SHA256.HashData(await File.ReadAllBytesAsync(ReplicatedPair.DataFile(pair.A)));
        Assert.Equal(written, SHA256.HashData(await File.ReadAllBytesAsync(ReplicatedPair.DataFile(pair.B))));

        Assert.False(await PlainClientIsAnsweredAsync(pair.PortB), "a plain TCP client got an answer from a TLS-only copy");
        using var foreign = TestCertificates.Host(_foreignAuthority, "host-a");
        Assert.False(await TlsClientIsAnsweredAsync(pair.PortB, foreign, _authority), "a certificate from another authority was accepted");
        await Wait.UntilAsync(
            () => Task.FromResult(pair.B.Log.Contains("refused: TLS handshake failed", StringComparison.Ordinal)),
            TimeSpan.FromSeconds(10),
            "the copy to log the refused handshakes");

        Assert.Equal(written, SHA256.HashData(await File.ReadAllBytesAsync(ReplicatedPair.DataFile(pair.B))));
        Assert.Equal("connected", (await ReplicatedPair.PeerAsync(pair.A)).GetProperty("connection").GetString());
    }

    [Fact]
    public async Task A_primary_accepts_only_the_host_it_dialled()
    {
        using var copy = ReplicationTls.FromOptions(Options("host-b", _authority))!;
        using var primary = ReplicationTls.FromOptions(Options("host-a", _authority))!;
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;

        async Task<Stream> DialAsync(string host)
        {
            var client = new TcpClient();
            await client.ConnectAsync(IPAddress.Loopback, port);
            var accepted = listener.AcceptSocketAsync();
            var serving = AcceptOneAsync(accepted);
            return await primary.ClientAsync(client.GetStream(), host, CancellationToken.None);

            async Task AcceptOneAsync(Task<Socket> socket)
            {
                try
                {
                    await using var server = await copy.ServerAsync(new NetworkStream(await socket, ownsSocket: true), CancellationToken.None);
                    await server.WriteAsync(new byte[] { 42 });
                    await server.FlushAsync();
                    await server.ReadAtLeastAsync(new byte[1], 1, throwOnEndOfStream: false);
                }
                catch (IOException)
                {
                    // The other side gave up on this certificate.
                }
            }
        }

        await using (var right = await DialAsync("host-b"))
        {
            var answer = new byte[1];
            Assert.Equal(1, await right.ReadAsync(answer));
            Assert.Equal(42, answer[0]);
        }

        var wrong = await Assert.ThrowsAsync<IOException>(() => DialAsync("host-c"));
        Assert.Contains("TLS with host-c failed", wrong.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Tls_asked_for_in_part_is_a_clear_error()
    {
        var (cert, key) = TestCertificates.WritePem(_authority, _pki, "only-cert");
        var error = Assert.Throws<ArgumentException>(() =>
            ReplicationTls.FromOptions(new AgentOptions { DataDirectory = _pki, ReplicationTlsCertificate = cert, ReplicationTlsKey = key }));
        Assert.Contains("--replication-tls-ca", error.Message, StringComparison.Ordinal);
    }

    private string[] TlsArguments(string host, X509Certificate2 authority)
    {
        var options = Options(host, authority);
        return ["--replication-tls-cert", options.ReplicationTlsCertificate!, "--replication-tls-key", options.ReplicationTlsKey!, "--replication-tls-ca", options.ReplicationTlsAuthority!];
    }

    private AgentOptions Options(string host, X509Certificate2 authority)
    {
        using var certificate = TestCertificates.Host(authority, host);
        var (cert, key) = TestCertificates.WritePem(certificate, _pki, host);
        var (ca, _) = TestCertificates.WritePem(authority, _pki, "ca-" + authority.GetNameInfo(X509NameType.SimpleName, forIssuer: false).Replace(' ', '-'));
        return new AgentOptions { DataDirectory = _pki, ReplicationTlsCertificate = cert, ReplicationTlsKey = key, ReplicationTlsAuthority = ca };
    }

    /// <summary>Sends what a primary would send first, in the clear; true if the copy answered anything.</summary>
    private static async Task<bool> PlainClientIsAnsweredAsync(int port)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, port);
        var stream = client.GetStream();
        await stream.WriteAsync(new byte[64]);
        return await AnsweredAsync(stream);
    }

    /// <summary>A client that trusts the copy (it knows the cluster's public authority) but presents <paramref name="certificate"/>.</summary>
    private static async Task<bool> TlsClientIsAnsweredAsync(int port, X509Certificate2 certificate, X509Certificate2 clusterAuthority)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, port);
        await using var tls = new SslStream(client.GetStream(), leaveInnerStreamOpen: false);
        var trust = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust, RevocationMode = X509RevocationMode.NoCheck };
        trust.CustomTrustStore.Add(clusterAuthority);
        try
        {
            await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = "host-b",
                ClientCertificates = [certificate],
                CertificateChainPolicy = trust,
                EnabledSslProtocols = SslProtocols.Tls13,
            });
            await tls.WriteAsync(new byte[64]);
            return await AnsweredAsync(tls);
        }
        catch (AuthenticationException)
        {
            return false;
        }
    }

    // TLS 1.3 may report a refused client certificate only at the first read, as a closed or reset connection.
    private static async Task<bool> AnsweredAsync(Stream stream)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        try
        {
            return await stream.ReadAsync(new byte[1], timeout.Token) > 0;
        }
        catch (Exception e) when (e is IOException or AuthenticationException)
        {
            return false;
        }
    }
}
