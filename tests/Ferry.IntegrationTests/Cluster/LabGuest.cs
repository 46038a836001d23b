using System.Globalization;
using System.Text.Json;
using Ferry.IntegrationTests.Lab;

namespace Ferry.IntegrationTests.Cluster;

/// <summary>The test guest as a VM of a lab cluster: made, counted, and looked up on its hosts.</summary>
internal static class LabGuest
{
    public static Task CreateAsync(LabMember host, string name, string volume, params string[] more) => CreateAsync(host, name, volume, 8080, more);

    /// <summary>The guest answering on <paramref name="port"/> of its host (two guests on one host need two ports).</summary>
    public static async Task CreateAsync(LabMember host, string name, string volume, int port, params string[] more)
    {
        var guest = await TestGuest.DirectoryAsync();
        await host.FerryJsonAsync(
            [
                "vm", "create", name, "--memory", "256M", "--disk", $"volume:{volume}", "--forward", $"0.0.0.0:{port}:80", "--health-check", $"http://127.0.0.1:{port}/health",
                "--kernel", Path.Combine(guest, "vmlinuz"), "--initrd", Path.Combine(guest, "initrd.img"),
                "--append", (await File.ReadAllTextAsync(Path.Combine(guest, "cmdline"))).Trim(), .. more,
            ]);
    }

    /// <summary>The guest's counter, once it answers on the host's forwarded port.</summary>
    public static async Task<long> CounterAsync(LabMember host, int port = 8080) =>
        await Wait.UntilAsync(() => TryCounterAsync(host, port), TimeSpan.FromSeconds(120), $"the guest on {host.Name}:{port} to count") ?? 0;

    /// <summary>Waits until the guest on <paramref name="host"/> counts past what it answers now.</summary>
    public static async Task GoesOnCountingAsync(LabMember host, int port = 8080)
    {
        var seen = await CounterAsync(host, port);
        await Wait.UntilAsync(async () => await TryCounterAsync(host, port) > seen, TimeSpan.FromSeconds(120), $"the guest on {host.Name}:{port} to count past {seen}");
    }

    /// <summary>The guest's counter if it answers now on the host's forwarded port, else null.</summary>
    public static async Task<long?> TryCounterAsync(LabMember host, int port = 8080)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(3) };
        try
        {
            return long.TryParse(await http.GetStringAsync($"http://{host.Address}:{port}/counter"), CultureInfo.InvariantCulture, out var n) && n > 0 ? n : null;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return null;
        }
    }

    /// <summary>"disk role connection" of each copy as its host reported it, in host order.</summary>
    public static string[] Copies(JsonElement volume) =>
    [
        .. volume.GetProperty("copies").EnumerateArray().Select(c => !c.TryGetProperty("disk", out _)
            ? "unreported"
            : $"{c.GetProperty("disk").GetString()} {c.GetProperty("role").GetString()} {c.GetProperty("connection").GetString()}"),
    ];

    /// <summary>What the host itself holds, from its local API (vms or volumes).</summary>
    public static async Task<JsonElement> LocalAsync(LabMember host, string what)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        return JsonDocument.Parse(await http.GetStringAsync($"{host.Api}/api/v1/{what}")).RootElement.Clone();
    }

    /// <summary>
    /// The hosts on which a QEMU process of the VM runs now (not stopped by a signal), read from every
    /// process's command line: the lab's hosts keep their VMs under DIR/HOST/data.
    /// </summary>
    public static IReadOnlyList<string> Instances(TestLab lab, string vm) => [.. Processes(lab, vm).Select(p => p.Host).Distinct()];

    /// <summary>The QEMU processes of the VM that run now (not stopped by a signal), with the lab host each belongs to.</summary>
    public static IReadOnlyList<(string Host, int Pid)> Processes(TestLab lab, string vm)
    {
        var found = new List<(string, int)>();
        foreach (var entry in System.IO.Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(entry), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            {
                continue;
            }

            string[] args;
            try
            {
                args = File.ReadAllText(Path.Combine(entry, "cmdline")).Split('\0');
            }
            catch (IOException)
            {
                continue; // gone meanwhile
            }

            if (!args[0].Contains("qemu-system", StringComparison.Ordinal) || !args.Contains($"guest={vm},debug-threads=on")
                || !Ferry.Hypervisor.HostProcess.IsAlive(pid) || Ferry.Hypervisor.HostProcess.IsStopped(pid))
            {
                continue;
            }

            // QEMU daemonizing is two processes for a moment: one instance, counted once per host.
            if (lab.Hosts.FirstOrDefault(h => args.Any(a => a.Contains(h.DataDirectory + "/", StringComparison.Ordinal))) is { } host && found.All(f => f.Item1 != host.Name))
            {
                found.Add((host.Name, pid));
            }
        }

        return found;
    }
}
