using System.Globalization;
using System.Text.Json;
using Ferry.Hypervisor;

namespace Ferry.IntegrationTests.Lab;

/// <summary>`ferry lab` itself: a killed host loses its VMs, and `down` leaves nothing behind whatever state the hosts are in.</summary>
public class LabTests
{
    [Fact]
    public async Task A_killed_host_loses_its_vms_and_down_removes_every_process_namespace_link_and_file()
    {
        await using var lab = await TestLab.UpAsync(2, members: 0);
        var h1 = lab["h1"];
        var guest = await TestGuest.DirectoryAsync();
        var disk = Path.Combine(h1.DataDirectory, "guest.raw");
        await using (var file = File.Create(disk))
        {
            file.SetLength(16 << 20);
        }

        await h1.FerryJsonAsync(
            "vm", "create", "g", "--memory", "256M", "--disk", disk, "--forward", "0.0.0.0:8080:80", "--start",
            "--kernel", Path.Combine(guest, "vmlinuz"), "--initrd", Path.Combine(guest, "initrd.img"),
            "--append", (await File.ReadAllTextAsync(Path.Combine(guest, "cmdline"))).Trim());
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(3) };
        var counter = $"http://{h1.Address}:8080/counter";
        await Wait.UntilAsync(async () => long.TryParse(await http.GetStringAsync(counter), CultureInfo.InvariantCulture, out var n) && n > 0,
            TimeSpan.FromSeconds(120), "the guest on h1 to count, reached from this machine through the lab's bridge");
        var qemu = (await h1.FerryJsonAsync("vm", "show", "g")).GetProperty("pid").GetInt32();
        Assert.Contains(qemu, Processes(await lab.StatusAsync(), "h1"));

        // A power cut: the agent and its VM die together.
        await lab.KillAsync("h1");
        var killed = Host(await lab.StatusAsync(), "h1");
        Assert.Equal("down", killed.GetProperty("state").GetString());
        Assert.Empty(killed.GetProperty("processes").EnumerateArray());
        Assert.False(HostProcess.IsAlive(qemu), "the VM died with its host");

        await lab.StartAsync("h1");
        Assert.NotEqual("running", (await h1.FerryJsonAsync("vm", "show", "g")).GetProperty("state").GetString());
        await h1.FerryJsonAsync("vm", "start", "g");
        var qemuAgain = (await h1.FerryJsonAsync("vm", "show", "g")).GetProperty("pid").GetInt32();

        // Every kind of fault at once, then down.
        await lab.PauseAsync("h2");
        await lab.PartitionAsync("h2");
        await lab.RunAsync("slow", "h2", "--rate", "1mbit");
        var delay = await lab.TryRunAsync("slow", "h1", "--delay", "20");
        Assert.True(delay.ExitCode == 0 || (delay.ExitCode == 7 && delay.StandardError.Contains("netem")), delay.StandardError);
        var status = await lab.StatusAsync();
        Assert.Equal("paused", Host(status, "h2").GetProperty("state").GetString());
        Assert.Equal(["h1"], Host(status, "h2").GetProperty("cutFrom").EnumerateArray().Select(e => e.GetString()));
        int[] pids = [.. Processes(status, "h1"), .. Processes(status, "h2"), qemuAgain];

        await lab.DownAsync();
        Assert.All(pids, pid => Assert.False(HostProcess.IsAlive(pid), $"process {pid} survived"));
        Assert.Empty(Directory.Exists("/run/netns") ? Directory.GetFiles("/run/netns", $"ferry-{lab.Name}-*") : []);
        Assert.False(Directory.Exists($"/sys/class/net/fl-{lab.Name}"), "the bridge is gone");
        Assert.False(Directory.Exists(lab.Directory), "the lab's data is gone");
        Assert.Equal(3, (await lab.TryRunAsync("status")).ExitCode);
    }

    private static JsonElement Host(JsonElement status, string name) =>
        status.GetProperty("hosts").EnumerateArray().Single(h => h.GetProperty("name").GetString() == name);

    private static int[] Processes(JsonElement status, string host) =>
        [.. Host(status, host).GetProperty("processes").EnumerateArray().Select(p => p.GetInt32())];
}
