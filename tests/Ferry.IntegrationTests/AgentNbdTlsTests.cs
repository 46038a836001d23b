using Ferry.IntegrationTests.Nbd;

namespace Ferry.IntegrationTests;

/// <summary>An agent serving volumes over TCP with a certificate requires TLS there, and keeps its local socket plain.</summary>
public sealed class AgentNbdTlsTests : IAsyncLifetime
{
    private readonly string _pemDirectory = Path.Combine(Path.GetTempPath(), "ferry-pem-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly int _nbdPort = Processes.FreeTcpPort();
    private AgentProcess _agent = null!;
    private string _pki = null!;

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(_pemDirectory);
        using var certificate = TestCertificates.SelfSigned();
        var (cert, key, pki) = TestCertificates.WritePem(certificate, _pemDirectory);
        _pki = pki;
        _agent = await AgentProcess.StartAsync("--nbd-listen", $"127.0.0.1:{_nbdPort}", "--nbd-tls-cert", cert, "--nbd-tls-key", key);
        await _agent.FerryJsonAsync("volume", "create", "remote", "--size", "8M");
    }

    public async Task DisposeAsync()
    {
        await _agent.DisposeAsync();
        Directory.Delete(_pemDirectory, recursive: true);
    }

    [Fact]
    public async Task Tcp_clients_must_use_tls_and_local_ones_need_not()
    {
        await NbdTools.RunAsync("nbdinfo", "--is", "tls", $"nbds://127.0.0.1:{_nbdPort}/remote?tls-certificates={_pki}");
        var plain = await Processes.RunAsync("nbdinfo", [$"nbd://127.0.0.1:{_nbdPort}/remote"], TimeSpan.FromSeconds(30));
        Assert.NotEqual(0, plain.ExitCode);

        await NbdTools.QemuIoAsync($"nbd+unix:///remote?socket={Path.Combine(_agent.DataDirectory, "nbd.sock")}", "write -P 0x42 0 4k", "read -P 0x42 0 4k");
    }
}
