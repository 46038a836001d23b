using System.Text.Json;
using Ferry.IntegrationTests.Cluster;
using Ferry.IntegrationTests.Lab;
using Xunit.Abstractions;

namespace Ferry.IntegrationTests.Migration;

/// <summary>Placement in a real cluster: draining a host and bringing its VMs home, and starts refused with the reason.</summary>
public class MaintenanceTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task Draining_a_host_moves_its_vms_away_live_and_undraining_brings_them_back()
    {
        await using var lab = await TestLab.UpAsync(3);
        var (h1, h2, h3) = (lab["h1"], lab["h2"], lab["h3"]);
        await h1.FerryJsonAsync("volume", "create", "d1", "--size", "64M", "--host", "h1,h2");
        await h1.FerryJsonAsync("volume", "create", "d2", "--size", "64M", "--host", "h1,h3");
        await LabGuest.CreateAsync(h1, "g1", "d1", 8080, "--prefer", "h1");
        await LabGuest.CreateAsync(h1, "g2", "d2", 8081, "--prefer", "h1");
        Assert.Equal("h1", (await h1.FerryJsonAsync("vm", "start", "g1")).GetProperty("host").GetString());
        Assert.Equal("h1", (await h1.FerryJsonAsync("vm", "start", "g2")).GetProperty("host").GetString());
        var before = (await LabGuest.CounterAsync(h1, 8080), await LabGuest.CounterAsync(h1, 8081));
        await InStepAsync(h1, "d1", "d2");

        await using (var watch = GuestWatch.Start(lab, "g1"))
        {
            var drained = await h3.FerryAsync("node", "drain", "h1");
            output.WriteLine(drained.StandardError);
            Assert.True(drained.ExitCode == 0, drained.StandardError);
            Assert.Contains("h1 is drained: 2 VMs moved away", drained.StandardError, StringComparison.Ordinal);
            Assert.Equal(("h2", "h3"), (await HostOfAsync(h1, "g1"), await HostOfAsync(h1, "g2")));
            Assert.Equal("h1", (await h1.FerryJsonAsync("vm", "show", "g1")).GetProperty("home").GetString());
            Assert.True(await LabGuest.CounterAsync(h2, 8080) > before.Item1 && await LabGuest.CounterAsync(h3, 8081) > before.Item2, "the guests did not go on counting");

            // Nothing new goes to a drained host.
            await h1.FerryJsonAsync("volume", "create", "d3", "--size", "16M", "--host", "h1,h2");
            await LabGuest.CreateAsync(h1, "g3", "d3", 8082, "--prefer", "h1");
            Assert.Equal("h2", (await h1.FerryJsonAsync("vm", "start", "g3")).GetProperty("host").GetString());

            await InStepAsync(h1, "d1", "d2");
            var undrained = await h2.FerryAsync("node", "undrain", "h1");
            output.WriteLine(undrained.StandardError);
            Assert.True(undrained.ExitCode == 0, undrained.StandardError);
            Assert.Contains("h1 takes VMs again: 2 VMs moved back", undrained.StandardError, StringComparison.Ordinal);
            Assert.Equal(("h1", "h1", "h2"), (await HostOfAsync(h1, "g1"), await HostOfAsync(h1, "g2"), await HostOfAsync(h1, "g3")));
            Assert.False((await h1.FerryJsonAsync("vm", "show", "g1")).TryGetProperty("home", out _), "g1 still names a home to go back to");

            await LabGuest.GoesOnCountingAsync(h1, 8080);
            watch.AssertOnlyUpAndNeverTwice("g1");
        }
    }

    [Fact]
    public async Task A_start_that_would_break_n_plus_one_or_put_twins_on_one_host_is_refused_with_the_reason()
    {
        // Two hosts of 4 GiB, 1 GiB of each kept for the host: 3 GiB for VMs on each, and all of one host's must fit on the other.
        await using var lab = await TestLab.UpAsync(2, hostMemory: "4G");
        var h1 = lab["h1"];
        foreach (var volume in new[] { "b1", "b2", "w1", "w2", "w3" })
        {
            await h1.FerryJsonAsync("volume", "create", volume, "--size", "16M", "--host", "h1,h2");
        }

        await LabGuest.CreateAsync(h1, "big1", "b1", 8080);
        await LabGuest.CreateAsync(h1, "big2", "b2", 8080);
        await SetMemoryAsync(lab, "big1", "big2");
        await h1.FerryJsonAsync("vm", "start", "big1");

        var refused = await h1.FerryAsync("vm", "start", "big2");
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("would break N+1", refused.StandardError, StringComparison.Ordinal);
        Assert.Contains("could not restart elsewhere", refused.StandardError, StringComparison.Ordinal);
        output.WriteLine(refused.StandardError);

        await LabGuest.CreateAsync(h1, "web1", "w1", 8081, "--anti-affinity", "web");
        await LabGuest.CreateAsync(h1, "web2", "w2", 8082, "--anti-affinity", "web");
        await LabGuest.CreateAsync(h1, "web3", "w3", 8083, "--anti-affinity", "web");
        var one = (await h1.FerryJsonAsync("vm", "start", "web1")).GetProperty("host").GetString();
        var two = (await h1.FerryJsonAsync("vm", "start", "web2")).GetProperty("host").GetString();
        Assert.NotEqual(one, two);
        var twins = await h1.FerryAsync("vm", "start", "web3");
        Assert.NotEqual(0, twins.ExitCode);
        Assert.Contains("twins", twins.StandardError, StringComparison.Ordinal);

        var verify = await h1.FerryAsync("cluster", "verify", "--output", "json");
        Assert.True(verify.ExitCode == 0, verify.StandardOutput + verify.StandardError);
        Assert.DoesNotContain(JsonDocument.Parse(verify.StandardOutput).RootElement.EnumerateArray(), r => r.GetProperty("severity").GetString() == "error");
    }

    [Fact]
    public async Task Vms_start_after_what_they_depend_on_is_healthy_and_one_whose_dependency_never_is_gives_up_saying_why()
    {
        await using var lab = await TestLab.UpAsync(3);
        var h1 = lab["h1"];
        await h1.FerryJsonAsync("volume", "create", "dbdisk", "--size", "16M", "--host", "h1,h2");
        await h1.FerryJsonAsync("volume", "create", "appdisk", "--size", "16M", "--host", "h1,h2");
        await h1.FerryJsonAsync("volume", "create", "lonedisk", "--size", "16M", "--host", "h1,h2");
        await LabGuest.CreateAsync(h1, "db", "dbdisk", 8080, "--prefer", "h1");
        await LabGuest.CreateAsync(h1, "app", "appdisk", 8081, "--prefer", "h1", "--depends-on", "db");
        await LabGuest.CreateAsync(h1, "lone", "lonedisk", 8082, "--prefer", "h2", "--depends-on", "app", "--dependency-timeout", "5s");

        // Asked first, app waits for db and says so.
        var app = await h1.FerryJsonAsync("vm", "start", "app");
        Assert.Contains("waiting for VM 'db' to be healthy", app.GetProperty("waiting").GetString(), StringComparison.Ordinal);
        await h1.FerryJsonAsync("vm", "start", "db");
        await Wait.UntilAsync(async () => (await h1.FerryJsonAsync("vm", "show", "app")).GetProperty("state").GetString() == "running", Settle, "app to start after db");
        var kinds = (await h1.FerryJsonAsync("cluster", "events")).EnumerateArray()
            .Select(e => $"{e.GetProperty("kind").GetString()} {(e.TryGetProperty("vm", out var vm) ? vm.GetString() : "")}").ToList();
        Assert.True(kinds.IndexOf("vm-healthy db") < kinds.IndexOf("vm-started app"), string.Join("\n", kinds));

        // lone waits for app, which is stopped now: after 5 s the cluster gives up on it, and says why.
        await h1.FerryJsonAsync("vm", "stop", "app");
        await h1.FerryJsonAsync("vm", "start", "lone");
        var gaveUp = await Wait.UntilAsync(async () => (await h1.FerryJsonAsync("vm", "show", "lone")).TryGetProperty("waiting", out var w) && w.GetString()!.Contains("not healthy within 5 s", StringComparison.Ordinal) ? w.GetString() : null,
            Settle, "the cluster to give up on lone");
        output.WriteLine(gaveUp);
        Assert.Contains("waiting for VM 'app' to be healthy (it is stopped)", gaveUp, StringComparison.Ordinal);
        Assert.DoesNotContain("h2", LabGuest.Instances(lab, "lone"));
    }

    /// <summary>Gives the VMs 2 GiB: defined anew with the same disk (the test guest is made with 256 MiB).</summary>
    private static async Task SetMemoryAsync(TestLab lab, params string[] vms)
    {
        var h1 = lab["h1"];
        var guest = await TestGuest.DirectoryAsync();
        foreach (var vm in vms)
        {
            var disk = (await h1.FerryJsonAsync("vm", "show", vm)).GetProperty("spec").GetProperty("disks")[0].GetProperty("volume").GetString()!;
            Assert.Equal(0, (await h1.FerryAsync("vm", "delete", vm)).ExitCode);
            await h1.FerryJsonAsync(
                "vm", "create", vm, "--memory", "2G", "--disk", $"volume:{disk}", "--no-network",
                "--kernel", Path.Combine(guest, "vmlinuz"), "--initrd", Path.Combine(guest, "initrd.img"), "--append", (await File.ReadAllTextAsync(Path.Combine(guest, "cmdline"))).Trim());
        }
    }

    private static async Task<string?> HostOfAsync(LabMember asked, string vm) => (await asked.FerryJsonAsync("vm", "show", vm)).GetProperty("host").GetString();

    private static async Task InStepAsync(LabMember asked, params string[] volumes)
    {
        foreach (var volume in volumes)
        {
            await Wait.UntilAsync(async () => LabGuest.Copies(await asked.FerryJsonAsync("volume", "show", volume)).All(c => c.StartsWith("up-to-date", StringComparison.Ordinal) && c.EndsWith("connected", StringComparison.Ordinal)),
                Settle, $"the copies of {volume} to be in step");
        }
    }
}
