using Xunit.Abstractions;

namespace Ferry.IntegrationTests.Nbd;

/// <summary>libnbd and QEMU over TCP with STARTTLS, against a server that requires TLS, trusting a self-signed certificate.</summary>
public sealed class TlsInteropTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Nbdinfo_and_qemu_io_negotiate_tls()
    {
        using var certificate = TestCertificates.SelfSigned();
        await using var server = await NbdTestServer.StartAsync(output, size: 4 << 20, tls: certificate);

        // Both clients read the CA certificate as ca-cert.pem in a directory; the certificate is its own CA.
        var pki = Path.Combine(server.Directory, "pki");
        Directory.CreateDirectory(pki);
        await File.WriteAllTextAsync(Path.Combine(pki, "ca-cert.pem"), certificate.ExportCertificatePem());

        await NbdTools.RunAsync("nbdinfo", "--is", "tls", $"nbds://127.0.0.1:{server.Port}/{NbdTestServer.ExportName}?tls-certificates={pki}");
        var plain = await Processes.RunAsync("nbdinfo", [server.TcpUri], TimeSpan.FromSeconds(30));
        Assert.NotEqual(0, plain.ExitCode);

        await NbdTools.RunAsync("qemu-io", "--object", $"tls-creds-x509,id=tls0,dir={pki},endpoint=client",
            "--image-opts", $"driver=nbd,host=127.0.0.1,port={server.Port},export={NbdTestServer.ExportName},tls-creds=tls0",
            "-c", "write -P 0x5a 0 64k", "-c", "read -P 0x5a 0 64k");
        Assert.All((await File.ReadAllBytesAsync(server.ImagePath))[..65536], b => Assert.Equal(0x5a, b));
    }
}
