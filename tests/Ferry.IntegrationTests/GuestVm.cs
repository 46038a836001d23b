using System.Globalization;

namespace Ferry.IntegrationTests;

/// <summary>A test-guest VM on an agent: creates its disk, and reads its counter over HTTP.</summary>
public sealed class GuestVm
{
    public static readonly TimeSpan BootTimeout = TimeSpan.FromSeconds(90);

    private GuestVm(AgentProcess agent, string name, int httpPort)
    {
        Agent = agent;
        Name = name;
        HttpPort = httpPort;
    }

    public AgentProcess Agent { get; }

    public string Name { get; }

    public int HttpPort { get; }

    /// <param name="disk">The --disk argument; by default a new 16 MiB raw file.</param>
    public static async Task<GuestVm> CreateAsync(AgentProcess agent, string name, bool start = true, string? disk = null)
    {
        var guest = await TestGuest.DirectoryAsync();
        if (disk is null)
        {
            disk = Path.Combine(agent.DataDirectory, $"{name}.raw");
            Directory.CreateDirectory(agent.DataDirectory);
            await using var file = File.Create(disk);
            file.SetLength(16 * 1024 * 1024);
        }

        var port = Processes.FreeTcpPort();
        var args = new List<string>
        {
            "vm", "create", name, "--memory", "256M", "--disk", disk,
            "--kernel", Path.Combine(guest, "vmlinuz"), "--initrd", Path.Combine(guest, "initrd.img"),
            "--append", (await File.ReadAllTextAsync(Path.Combine(guest, "cmdline"))).Trim(),
            "--forward", $"{port}:80",
        };
        if (start)
        {
            args.Add("--start");
        }

        var output = await agent.FerryAsync([.. args]);
        Assert.True(output.ExitCode == 0, $"vm create failed ({output.ExitCode}): {output.StandardError}\n{agent.Log}");
        return new GuestVm(agent, name, port);
    }

    /// <summary>The counter the guest serves; only values already on its disk are served.</summary>
    public async Task<long> CounterAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(3));
        var text = await Agent.Http.GetStringAsync($"http://127.0.0.1:{HttpPort}/counter", cts.Token);
        return long.Parse(text.Trim(), CultureInfo.InvariantCulture);
    }

    public async Task<long> CounterAboveAsync(long value)
    {
        long seen = 0;
        await Wait.UntilAsync(async () => (seen = await CounterAsync()) > value, BootTimeout, $"VM '{Name}' to serve a counter above {value}");
        return seen;
    }

    public async Task<string> StateAsync() => (await Agent.VmAsync(Name)).GetProperty("state").GetString()!;

    public async Task<int> PidAsync() => (await Agent.VmAsync(Name)).GetProperty("pid").GetInt32();

    public string SerialLog => File.ReadAllText(Path.Combine(Agent.DataDirectory, "vms", Name, "serial.log"));
}
