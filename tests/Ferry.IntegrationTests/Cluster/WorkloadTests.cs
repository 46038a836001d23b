using System.Text.Json;
using Ferry.IntegrationTests.Lab;
using Ferry.IntegrationTests.Nbd;

namespace Ferry.IntegrationTests.Cluster;

/// <summary>
/// Volumes and VMs of the cluster across real agents in a lab: made on any host, carried out by each
/// host's local manager, epochs and Outdated marks granted by consensus.
/// </summary>
public class WorkloadTests
{
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_vm_made_on_any_host_runs_where_the_cluster_places_it_and_moves_with_its_disks()
    {
        await using var lab = await TestLab.UpAsync(3);
        var (h1, h2, h3) = (lab["h1"], lab["h2"], lab["h3"]);

        var volume = await h2.FerryJsonAsync("volume", "create", "disk", "--size", "64M", "--host", "h1,h2,h3");
        Assert.Equal(["h1", "h2", "h3"], volume.GetProperty("copies").EnumerateArray().Select(c => c.GetProperty("host").GetString()));
        await LabGuest.CreateAsync(h3, "g", "disk");

        // No primary yet: the cluster places the VM (h1: every host holds a copy and none runs a VM) and promotes its disk there.
        var started = await h3.FerryJsonAsync("vm", "start", "g");
        Assert.Equal(("h1", "running"), (started.GetProperty("host").GetString(), started.GetProperty("state").GetString()));
        var before = await LabGuest.CounterAsync(h1);
        await Wait.UntilAsync(async () => LabGuest.Copies(await h2.FerryJsonAsync("volume", "show", "disk")) is ["up-to-date primary connected", "up-to-date secondary connected", "up-to-date secondary connected"] ? "" : null,
            Settle, "every copy reported in sync, h1's primary");
        var shown = await h2.FerryJsonAsync("volume", "show", "disk");
        Assert.Equal(("h1", 1UL), (shown.GetProperty("primary").GetString(), shown.GetProperty("epoch").GetUInt64()));

        // Stopped, its disk made primary on h2 (epoch 2): started again, it follows its disk there with its data.
        await h1.FerryJsonAsync("vm", "stop", "g");
        var promoted = await h1.FerryJsonAsync("volume", "promote", "disk", "--host", "h2");
        Assert.Equal(("h2", 2UL), (promoted.GetProperty("primary").GetString(), promoted.GetProperty("epoch").GetUInt64()));
        var moved = await h3.FerryJsonAsync("vm", "start", "g");
        Assert.Equal(("h2", "running"), (moved.GetProperty("host").GetString(), moved.GetProperty("state").GetString()));
        Assert.True(await LabGuest.CounterAsync(h2) >= before, "the guest's counter went on from its disk, replicated from h1");
        await Wait.UntilAsync(async () => (await LabGuest.LocalAsync(h1, "vms")).GetArrayLength() == 0 ? "" : null, Settle, "h1 to forget the VM placed elsewhere");
        Assert.Equal("secondary", (await h1.FerryJsonAsync("volume", "show", "disk", "--local")).GetProperty("copy").GetProperty("role").GetString());

        // A promotion under a running VM is a migration, not a promote; the VM's host is refused its volume's deletion.
        var refused = await h1.FerryAsync("volume", "promote", "disk", "--host", "h3");
        Assert.Contains("runs on 'disk' on h2", refused.StandardError);
        Assert.Contains("disk of VM 'g'", (await h1.FerryAsync("volume", "delete", "disk")).StandardError);

        // Gone from the cluster, gone from every host.
        await h3.FerryJsonAsync("vm", "stop", "g");
        Assert.Equal(0, (await h3.FerryAsync("vm", "delete", "g")).ExitCode);
        Assert.Equal(0, (await h3.FerryAsync("volume", "delete", "disk")).ExitCode);
        foreach (var host in lab.Hosts)
        {
            await Wait.UntilAsync(async () => (await LabGuest.LocalAsync(host, "volumes")).GetArrayLength() == 0 && (await LabGuest.LocalAsync(host, "vms")).GetArrayLength() == 0 ? "" : null,
                Settle, $"{host.Name} to delete its copy and forget the VM");
        }
    }

    [Fact]
    public async Task Links_are_cluster_TLS_and_a_copy_cut_off_during_writes_is_outdated_by_the_cluster_refused_promotion_and_resynced_after_healing()
    {
        await using var lab = await TestLab.UpAsync(3);
        var (h1, h3) = (lab["h1"], lab["h3"]);
        await h1.FerryJsonAsync("volume", "create", "disk", "--size", "16M", "--host", "h1,h2,h3");
        await h1.FerryJsonAsync("volume", "promote", "disk", "--host", "h1");
        var nbd = $"nbd:unix:{Path.Combine(h1.DataDirectory, "nbd.sock")}:exportname=disk";
        await Wait.UntilAsync(async () => LabGuest.Copies(await h1.FerryJsonAsync("volume", "show", "disk"))[0] == "up-to-date primary connected" ? "" : null, Settle, "h1 connected to its peers");
        await NbdTools.QemuIoAsync(nbd, "write -P 1 0 1M");

        // The links are TLS with the cluster's certificates: a client without one is dropped.
        using (var plain = new System.Net.Sockets.TcpClient())
        {
            await plain.ConnectAsync(lab["h2"].Address, 7472);
            var stream = plain.GetStream();
            await stream.WriteAsync("FERRY-REPLICATION plain hello\n"u8.ToArray());
        }

        await Wait.UntilAsync(() => Task.FromResult(lab.Log("h2").Contains("TLS handshake failed") ? "" : null), Settle, "h2 to log the refused handshake");

        // Cut off, h3 cannot have the next write: h1 goes on with h2 only once the cluster marked h3 Outdated.
        await lab.PartitionAsync("h3");
        await NbdTools.QemuIoAsync(nbd, "write -P 2 1M 1M", "flush");
        var outdated = (await h1.FerryJsonAsync("volume", "show", "disk")).GetProperty("copies").EnumerateArray().Single(c => c.GetProperty("host").GetString() == "h3");
        Assert.Equal("h1", outdated.GetProperty("outdated").GetProperty("byHost").GetString());

        var refused = await h1.FerryAsync("volume", "promote", "disk", "--host", "h3");
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("Outdated", refused.StandardError);

        // Healed: h3 catches up from h1's bitmap and the mark goes.
        await lab.HealAsync();
        try
        {
            await Wait.UntilAsync(async () =>
            {
                var copy = (await h1.FerryJsonAsync("volume", "show", "disk")).GetProperty("copies").EnumerateArray().Single(c => c.GetProperty("host").GetString() == "h3");
                return !copy.TryGetProperty("outdated", out _) && copy.GetProperty("disk").GetString() == "up-to-date" ? "" : null;
            }, Settle, "h3 resynced and no longer Outdated");
        }
        catch (TimeoutException e)
        {
            var shown = (await h1.FerryAsync("volume", "show", "disk", "--output", "json")).StandardOutput;
            var local = (await h1.FerryAsync("volume", "show", "disk", "--local", "--output", "json")).StandardOutput;
            throw new TimeoutException($"{e.Message}\ncluster: {shown}\nh1's copy: {local}\nh1: {lab.Log("h1")}\nh3: {lab.Log("h3")}", e);
        }
        Assert.Equal("h1", (await h3.FerryJsonAsync("volume", "show", "disk")).GetProperty("primary").GetString());
    }
}
