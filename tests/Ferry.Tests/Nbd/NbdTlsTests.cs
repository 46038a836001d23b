using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Ferry.Storage.Nbd;
using Microsoft.Extensions.Logging.Abstractions;

namespace Ferry.Tests.Nbd;

/// <summary>NBD_OPT_STARTTLS over TCP with a server that requires TLS (proto.md "FORCEDTLS mode").</summary>
public sealed class NbdTlsTests : IAsyncLifetime, IDisposable
{
    private readonly X509Certificate2 _certificate = CreateCertificate();
    private readonly MemoryBlockDevice _device = new(1 << 20);
    private NbdServer _server = null!;

    public async Task InitializeAsync()
    {
        _server = new NbdServer(new NbdExportList(new NbdExport("disk", string.Empty, _device)), NullLogger<NbdServer>.Instance,
            new NbdServerOptions { TlsCertificate = _certificate, RequireTls = true });
        await _server.ListenTcpAsync(new IPEndPoint(IPAddress.Loopback, 0), CancellationToken.None);
    }

    public async Task DisposeAsync() => await _server.DisposeAsync();

    public void Dispose() => _certificate.Dispose();

    private static X509Certificate2 CreateCertificate()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName("localhost");
        san.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(1));
        return X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null);
    }

    private async Task<NbdTestClient> NegotiatingAsync()
    {
        var client = await NbdTestClient.ConnectAsync(_server.TcpEndpoint!);
        await client.ReadGreetingAsync();
        await client.SendAsync(NbdTestClient.ClientFlags(NbdWire.ClientFlagFixedNewstyle));
        return client;
    }

    [Fact]
    public async Task Options_before_tls_are_refused_with_tls_required()
    {
        await using var client = await NegotiatingAsync();

        Assert.Equal(NbdOptionReply.ErrTlsRequired, (await client.OptionAsync(NbdOption.Go, NbdTestWire.EncodeExportQuery("disk")))[^1].Type);
        Assert.Equal(NbdOptionReply.ErrTlsRequired, (await client.OptionAsync(NbdOption.List, []))[^1].Type);
        Assert.Equal(NbdOptionReply.ErrTlsRequired, (await client.OptionAsync(NbdOption.StructuredReply, []))[^1].Type);
        Assert.Equal(NbdOptionReply.ErrTlsRequired, (await client.OptionAsync(4242, []))[^1].Type);
        Assert.Equal(NbdOptionReply.Ack, (await client.OptionAsync(NbdOption.Abort, []))[^1].Type);
    }

    [Fact]
    public async Task Export_name_before_tls_is_disconnected()
    {
        await using var client = await NegotiatingAsync();

        await client.SendAsync(NbdTestWire.EncodeOption(NbdOption.ExportName, "disk"u8));

        Assert.True(await client.IsClosedByServerAsync());
    }

    [Fact]
    public async Task After_starttls_the_session_negotiates_and_transmits_over_tls()
    {
        await using var client = await NegotiatingAsync();

        Assert.Equal(NbdOptionReply.Ack, (await client.OptionAsync(NbdOption.StartTls, []))[^1].Type);
        await client.UpgradeToTlsAsync(_certificate);
        Assert.Equal(NbdOptionReply.ErrInvalid, (await client.OptionAsync(NbdOption.StartTls, []))[^1].Type);
        Assert.Equal(NbdOptionReply.Ack, (await client.OptionAsync(NbdOption.StructuredReply, []))[^1].Type);
        var go = await client.OptionAsync(NbdOption.Go, NbdTestWire.EncodeExportQuery("disk"));
        Assert.Equal(NbdOptionReply.Ack, go[^1].Type);

        var write = await client.RequestAsync(new NbdRequest(NbdCommand.Write, NbdCommandFlags.Fua, 1, 4096, 4), [9, 8, 7, 6]);
        Assert.Equal(0u, write.Error);
        Assert.Equal([9, 8, 7, 6], _device.Data[4096..4100]);
    }

    [Fact]
    public async Task A_failed_tls_handshake_ends_the_session_and_the_server_serves_on()
    {
        await using (var client = await NegotiatingAsync())
        {
            Assert.Equal(NbdOptionReply.Ack, (await client.OptionAsync(NbdOption.StartTls, []))[^1].Type);
            await client.SendAsync(new byte[64]); // not a TLS hello
            Assert.True(await client.IsClosedByServerAsync());
        }

        await using var next = await NegotiatingAsync();
        Assert.Equal(NbdOptionReply.Ack, (await next.OptionAsync(NbdOption.StartTls, []))[^1].Type);
        await next.UpgradeToTlsAsync(_certificate);
    }
}
