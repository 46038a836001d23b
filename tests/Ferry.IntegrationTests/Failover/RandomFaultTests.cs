using System.Globalization;
using System.Text.Json;
using Ferry.IntegrationTests.Cluster;
using Ferry.IntegrationTests.Lab;
using Xunit.Abstractions;

namespace Ferry.IntegrationTests.Failover;

/// <summary>
/// Rounds of random faults (kill -9 of a host, of its agent alone, SIGSTOP, a partition; on the VM's host
/// or another; repaired after a random while) on a 3-host lab with fence agents, the guest counting on a
/// volume with a copy on every host. After each round the cluster must be whole again and: the counter
/// never went back, no two QEMU processes of the VM ever ran at once, the volume's epoch never went back
/// and no copy saw a higher one. The seed is printed; FERRY_FAULT_SEED and FERRY_FAULT_ROUNDS replay or
/// lengthen a run (scripts/soak.sh).
/// </summary>
public class RandomFaultTests(ITestOutputHelper output)
{
    private enum Fault
    {
        KillHost,
        KillAgent,
        Pause,
        Partition,
    }

    private static readonly TimeSpan Recovery = TimeSpan.FromSeconds(120);

    [Fact]
    public async Task Random_faults_never_lose_a_write_never_run_the_vm_twice_and_leave_it_running_each_time()
    {
        var seed = int.TryParse(Environment.GetEnvironmentVariable("FERRY_FAULT_SEED"), CultureInfo.InvariantCulture, out var s) ? s : 20261205;
        var rounds = int.TryParse(Environment.GetEnvironmentVariable("FERRY_FAULT_ROUNDS"), CultureInfo.InvariantCulture, out var r) ? r : 3;
        output.WriteLine($"seed {seed}, {rounds} rounds (replay with FERRY_FAULT_SEED={seed} FERRY_FAULT_ROUNDS={rounds})");
        var random = new Random(seed);

        await using var lab = await TestLab.UpAsync(3, fence: true);
        await lab["h1"].FerryJsonAsync("volume", "create", "disk", "--size", "64M", "--host", "h1,h2,h3");
        await LabGuest.CreateAsync(lab["h1"], "g", "disk");
        await lab["h1"].FerryJsonAsync("vm", "start", "g");
        var (on, epoch) = await SettledAsync(lab);
        var last = await LabGuest.CounterAsync(lab[on]);
        var checks = 0;

        await using var watch = InstanceWatch.Start(lab, "g");
        for (var round = 1; round <= rounds; round++)
        {
            last = Math.Max(last, await LabGuest.CounterAsync(lab[on]));
            var fault = (Fault)random.Next(4);
            var target = random.Next(2) == 0 ? on : lab.Hosts[random.Next(lab.Hosts.Count)].Name;
            var lasting = TimeSpan.FromMilliseconds(random.Next(500, 10_000));
            output.WriteLine($"round {round}: {fault} on {target} (the VM's host: {on}) for {lasting.TotalSeconds:0.0} s");

            await InjectAsync(lab, fault, target);
            await Task.Delay(lasting);
            await RepairAsync(lab, fault, target);

            var (now, nowEpoch) = await SettledAsync(lab);
            var counted = await LabGuest.CounterAsync(lab[now]);
            Assert.True(counted >= last, $"round {round}: the counter went back from {last} to {counted}");
            Assert.Empty(watch.Twice);
            Assert.True(nowEpoch >= epoch, $"round {round}: the volume's epoch went back from {epoch} to {nowEpoch}");
            checks += 3;
            output.WriteLine($"  the VM runs on {now} at epoch {nowEpoch}, counter {counted} (was {last})");
            (on, epoch, last) = (now, nowEpoch, counted);
        }

        output.WriteLine($"{rounds} rounds of random faults, {checks} invariant checks (plus a process listing every 50 ms), all held");
    }

    private static async Task InjectAsync(TestLab lab, Fault fault, string host)
    {
        switch (fault)
        {
            case Fault.KillHost:
                await lab.KillAsync(host);
                break;
            case Fault.KillAgent:
                await lab.RunAsync("kill-agent", host);
                break;
            case Fault.Pause:
                await lab.PauseAsync(host);
                break;
            case Fault.Partition:
                await lab.PartitionAsync(host);
                break;
        }
    }

    /// <summary>Undoes the fault; a host that is down then (killed, or switched off by its fence agent) is started again.</summary>
    private static async Task RepairAsync(TestLab lab, Fault fault, string host)
    {
        if (fault == Fault.Pause)
        {
            await lab.ResumeAsync(host);
        }
        else if (fault == Fault.Partition)
        {
            await lab.HealAsync();
        }

        await StartDownHostsAsync(lab);
    }

    /// <summary>
    /// Starts every host that is down: killed by the fault, or switched off by its fence agent since (as a
    /// power switch would leave it). A start may fail when the fence agent switches the host off again
    /// meanwhile, which is its job: the next look starts it again.
    /// </summary>
    private static async Task StartDownHostsAsync(TestLab lab)
    {
        foreach (var down in (await lab.StatusAsync()).GetProperty("hosts").EnumerateArray().Where(h => h.GetProperty("state").GetString() == "down"))
        {
            await lab.TryRunAsync("start", down.GetProperty("name").GetString()!);
        }
    }

    /// <summary>
    /// Waits until the cluster is whole: every host back and not fenced, the VM running and answering, its
    /// volume's three copies up to date and connected, none at a higher epoch than the volume's. Returns
    /// where the VM runs and the volume's epoch.
    /// </summary>
    private static async Task<(string Host, ulong Epoch)> SettledAsync(TestLab lab)
    {
        try
        {
            return await WholeAsync(lab);
        }
        catch (TimeoutException e)
        {
            var seen = new System.Text.StringBuilder(e.Message);
            foreach (var args in new[] { new[] { "cluster", "status" }, ["vm", "show", "g"], ["volume", "show", "disk"] })
            {
                seen.Append("\n\n").Append(string.Join(' ', args)).Append(":\n").Append((await lab["h2"].FerryAsync(args)).StandardOutput);
            }

            foreach (var host in lab.Hosts)
            {
                seen.Append("\n\n").Append(host.Name).Append("'s log:\n").Append(lab.Log(host.Name, line => !line.Contains("Ferry.Replication[2201]", StringComparison.Ordinal), 60));
            }

            throw new TimeoutException(seen.ToString(), e);
        }
    }

    private static async Task<(string Host, ulong Epoch)> WholeAsync(TestLab lab)
    {
        var settled = await Wait.UntilAsync<Tuple<string, ulong>>(async () =>
        {
            await StartDownHostsAsync(lab);
            var status = await JsonAsync(lab["h1"], "cluster", "status");
            var vm = await JsonAsync(lab["h1"], "vm", "show", "g");
            var volume = await JsonAsync(lab["h1"], "volume", "show", "disk");
            if (status is null || vm is null || volume is null
                || status.Value.GetProperty("hosts").EnumerateArray().Any(h => h.TryGetProperty("fenced", out var f) && f.ValueKind != JsonValueKind.Null)
                || vm.Value.GetProperty("state").GetString() != "running" || !vm.Value.TryGetProperty("host", out var host)
                || LabGuest.Copies(volume.Value).Count(c => c.StartsWith("up-to-date", StringComparison.Ordinal) && c.EndsWith("connected", StringComparison.Ordinal)) != 3)
            {
                return null;
            }

            var epoch = volume.Value.GetProperty("epoch").GetUInt64();
            foreach (var copy in volume.Value.GetProperty("copies").EnumerateArray())
            {
                Assert.True(copy.GetProperty("epoch").GetUInt64() <= epoch, $"a copy on {copy.GetProperty("host")} saw epoch {copy.GetProperty("epoch")}, above the volume's {epoch}");
            }

            return await LabGuest.TryCounterAsync(lab[host.GetString()!]) is null ? null : Tuple.Create(host.GetString()!, epoch);
        }, Recovery, "the cluster to be whole again with the VM running");
        return (settled.Item1, settled.Item2);
    }

    /// <summary>The CLI's JSON answer, or null when the host does not answer (it may be the one at fault).</summary>
    private static async Task<JsonElement?> JsonAsync(LabMember host, params string[] args)
    {
        var result = await host.FerryAsync([.. args, "--output", "json"]);
        return result.ExitCode == 0 ? JsonDocument.Parse(result.StandardOutput).RootElement.Clone() : null;
    }
}
