using System.CommandLine;
using System.Globalization;
using Ferry.Agent.Vms;
using Ferry.Cluster.State;
using Ferry.Hypervisor;
using Spectre.Console;

namespace Ferry.Cli.Commands;

/// <summary>`ferry vm ...`: create, inspect and operate VMs.</summary>
internal static class VmCommands
{
    public static Command Build()
    {
        var vm = new Command("vm", "Create, run and inspect VMs");
        vm.Subcommands.Add(Create());
        vm.Subcommands.Add(List());
        vm.Subcommands.Add(Show());
        vm.Subcommands.Add(Action("start", "Start a VM", "start"));
        vm.Subcommands.Add(Stop());
        vm.Subcommands.Add(Action("restart", "Stop a VM gracefully and start it again", "restart"));
        vm.Subcommands.Add(Action("pause", "Freeze a VM's vCPUs", "pause"));
        vm.Subcommands.Add(Action("resume", "Continue a paused VM", "resume"));
        vm.Subcommands.Add(Migrate());
        vm.Subcommands.Add(Delete());
        vm.Subcommands.Add(ConsoleCommand.Build());
        vm.Subcommands.Add(EventsCommand.Build("events", "Show a VM's events (all events without a name)", nameRequired: false));
        return vm;
    }

    public static Argument<string> NameArgument() => new("name") { Description = "The VM's name" };

    private static Command Create()
    {
        var name = NameArgument();
        var cpus = new Option<int>("--cpus") { Description = "Number of vCPUs", DefaultValueFactory = _ => 1 };
        var memory = new Option<string>("--memory") { Description = "Memory, e.g. 256M or 2G (a plain number means MiB)", DefaultValueFactory = _ => "256M" };
        var disks = new Option<string[]>("--disk") { Description = "A disk: an image file PATH[,format=raw|qcow2][,readonly], or a Ferry volume volume:NAME[,readonly] (repeatable)" };
        var kernel = new Option<string>("--kernel") { Description = "Boot this kernel directly" };
        var initrd = new Option<string>("--initrd") { Description = "Initial ramdisk for --kernel" };
        var append = new Option<string>("--append") { Description = "Kernel command line for --kernel" };
        var forwards = new Option<string[]>("--forward") { Description = "Forward a host port to the guest: [ADDR:]HOSTPORT:GUESTPORT (repeatable; user networking)" };
        var bridge = new Option<string>("--bridge") { Description = "Attach the NIC to this host bridge instead of user networking" };
        var noNet = new Option<bool>("--no-network") { Description = "Give the VM no NIC" };
        var start = new Option<bool>("--start") { Description = "Start the VM once created" };
        var health = new Option<string>("--health-check") { Description = "http(s) URL, as the VM's host reaches it, that answers 2xx once the guest is healthy" };
        var maxRestarts = new Option<int?>("--max-restarts") { Description = $"In a cluster: restarts on its host after a crash before it moves (default {RestartLimits.Default.MaxRestarts})" };
        var maxRelocations = new Option<int?>("--max-relocations") { Description = $"In a cluster: moves to another host after crashes before the cluster gives up (default {RestartLimits.Default.MaxRelocations})" };

        var antiAffinity = new Option<string>("--anti-affinity") { Description = "In a cluster: the VM's group of twins; two VMs of one group never run on one host" };
        var prefer = new Option<string[]>("--prefer") { Description = "In a cluster: a host the VM runs on first when it can take it (repeatable, in order)" };
        var dependsOn = new Option<string[]>("--depends-on") { Description = "In a cluster: a VM that must be healthy before this one starts (repeatable)" };
        var dependencyTimeout = new Option<string?>("--dependency-timeout") { Description = "In a cluster: how long to wait for --depends-on VMs before giving up, e.g. 10m (default 5m)" };

        var command = new Command("create", "Create a VM") { name, cpus, memory, disks, kernel, initrd, append, forwards, bridge, noNet, health, maxRestarts, maxRelocations, antiAffinity, prefer, dependsOn, dependencyTimeout, start };
        command.SetAction(CliContext.Action(async (context, parse, ct) =>
        {
            var spec = BuildSpec(parse, name, cpus, memory, disks, kernel, initrd, append, forwards, bridge, noNet);
            if (!spec.TryGetValue(out var value, out var error))
            {
                return CliContext.Fail(error);
            }

            value = value with { HealthCheck = parse.GetValue(health) };
            // Cluster-only settings travel in the query; a single host's agent ignores them.
            var query = new List<string>();
            if (parse.GetValue(maxRestarts) is { } restarts)
            {
                query.Add($"maxRestarts={restarts}");
            }

            if (parse.GetValue(maxRelocations) is { } relocations)
            {
                query.Add($"maxRelocations={relocations}");
            }

            if (parse.GetValue(antiAffinity) is { } group)
            {
                query.Add($"antiAffinity={Uri.EscapeDataString(group)}");
            }

            query.AddRange((parse.GetValue(prefer) ?? []).Select(host => $"prefer={Uri.EscapeDataString(host)}"));
            query.AddRange((parse.GetValue(dependsOn) ?? []).Select(vm => $"dependsOn={Uri.EscapeDataString(vm)}"));
            if (parse.GetValue(dependencyTimeout) is { } timeoutText)
            {
                if (!DurationParser.Parse(timeoutText).TryGetValue(out var timeout, out var timeoutError))
                {
                    return CliContext.Fail(timeoutError);
                }

                query.Add($"dependencyTimeoutSeconds={(long)timeout.TotalSeconds}");
            }

            var created = await context.Client.CreateVmAsync(value, ct, query.Count == 0 ? "" : "?" + string.Join('&', query)).ConfigureAwait(false);
            if (created.IsOk && parse.GetValue(start))
            {
                created = await context.Client.VmActionAsync(value.Name, "start", ct).ConfigureAwait(false);
            }

            return context.Print(created, RenderVm);
        }));
        return command;
    }

    private static Result<VmSpec> BuildSpec(
        ParseResult parse,
        Argument<string> name,
        Option<int> cpus,
        Option<string> memory,
        Option<string[]> disks,
        Option<string> kernel,
        Option<string> initrd,
        Option<string> append,
        Option<string[]> forwards,
        Option<string> bridge,
        Option<bool> noNet)
    {
        if (!SizeParser.ParseMiB(parse.GetValue(memory)!).TryGetValue(out var memoryMiB, out var sizeError))
        {
            return sizeError;
        }

        var diskSpecs = new List<DiskSpec>();
        foreach (var text in parse.GetValue(disks) ?? [])
        {
            if (!SpecParser.ParseDisk(text).TryGetValue(out var disk, out var diskError))
            {
                return diskError;
            }

            diskSpecs.Add(disk.Path is null ? disk : disk with { Path = Path.GetFullPath(disk.Path) });
        }

        var portForwards = new List<PortForward>();
        foreach (var text in parse.GetValue(forwards) ?? [])
        {
            if (!SpecParser.ParseForward(text).TryGetValue(out var forward, out var forwardError))
            {
                return forwardError;
            }

            portForwards.Add(forward);
        }

        var bridgeName = parse.GetValue(bridge);
        NicSpec[] nics = parse.GetValue(noNet)
            ? []
            : [bridgeName is null ? new NicSpec { Forwards = portForwards } : new NicSpec { Mode = NicMode.Bridge, Bridge = bridgeName, Forwards = portForwards }];
        var kernelPath = parse.GetValue(kernel);
        return new VmSpec
        {
            Name = parse.GetValue(name)!,
            VCpus = parse.GetValue(cpus),
            MemoryMiB = memoryMiB,
            Disks = diskSpecs,
            Nics = nics,
            Kernel = kernelPath is null ? null : new KernelBoot(Path.GetFullPath(kernelPath), parse.GetValue(initrd) is { } i ? Path.GetFullPath(i) : null, parse.GetValue(append)),
        };
    }

    private static Command List()
    {
        var command = new Command("list", "List the VMs");
        command.SetAction(CliContext.Action(async (context, _, ct) =>
            context.Print(await context.Client.ListVmsAsync(ct).ConfigureAwait(false), RenderVmTable)));
        return command;
    }

    private static Command Show()
    {
        var name = NameArgument();
        var command = new Command("show", "Show one VM in detail") { name };
        command.SetAction(CliContext.Action(async (context, parse, ct) =>
            context.Print(await context.Client.GetVmAsync(parse.GetValue(name)!, ct).ConfigureAwait(false), RenderVm)));
        return command;
    }

    private static Command Stop()
    {
        var name = NameArgument();
        var force = new Option<bool>("--force") { Description = "Power off at once instead of pressing the ACPI power button" };
        var command = new Command("stop", "Stop a VM: ACPI power-off, then quit, then kill") { name, force };
        command.SetAction(CliContext.Action(async (context, parse, ct) =>
            context.Print(
                await context.Client.VmActionAsync(parse.GetValue(name)!, "stop", ct, parse.GetValue(force) ? "?force=true" : string.Empty).ConfigureAwait(false),
                RenderVm)));
        return command;
    }

    private static Command Action(string verb, string description, string action)
    {
        var name = NameArgument();
        var command = new Command(verb, description) { name };
        command.SetAction(CliContext.Action(async (context, parse, ct) =>
            context.Print(await context.Client.VmActionAsync(parse.GetValue(name)!, action, ct).ConfigureAwait(false), RenderVm)));
        return command;
    }

    private static Command Migrate()
    {
        var name = NameArgument();
        var to = new Option<string?>("--to") { Description = "The host to move it to (default: the one placement chooses)" };
        var downtime = new Option<string?>("--max-downtime") { Description = $"Longest pause at the switch-over, e.g. 50ms (default {MigrationLimits.Default.MaxDowntime.TotalMilliseconds:0}ms)" };
        var bandwidth = new Option<string?>("--bandwidth") { Description = "Most the migration sends per second, e.g. 500M (default 1G)" };
        var timeout = new Option<string?>("--timeout") { Description = $"Cancel the migration after this long, e.g. 90s (default {MigrationLimits.Default.Timeout.TotalMinutes:0}m)" };
        var command = new Command("migrate", "Move a running VM live to another host that holds its disks; waits until it runs there") { name, to, downtime, bandwidth, timeout };
        command.SetAction(CliContext.Action(async (context, parse, ct) =>
        {
            var query = new List<string>();
            if (parse.GetValue(to) is { } host)
            {
                query.Add($"to={Uri.EscapeDataString(host)}");
            }

            if (parse.GetValue(downtime) is { } downtimeText)
            {
                if (!DurationParser.Parse(downtimeText).TryGetValue(out var d, out var error))
                {
                    return CliContext.Fail(error);
                }

                query.Add($"maxDowntimeMs={(long)d.TotalMilliseconds}");
            }

            if (parse.GetValue(bandwidth) is { } bandwidthText)
            {
                if (!SizeParser.ParseMiB(bandwidthText).TryGetValue(out var mib, out var error))
                {
                    return CliContext.Fail(error);
                }

                query.Add($"bandwidthMiBps={mib}");
            }

            if (parse.GetValue(timeout) is { } timeoutText)
            {
                if (!DurationParser.Parse(timeoutText).TryGetValue(out var t, out var error))
                {
                    return CliContext.Fail(error);
                }

                query.Add($"timeoutSeconds={(long)t.TotalSeconds}");
            }

            var migrated = await context.Client.VmActionAsync(parse.GetValue(name)!, "migrate", ct, query.Count == 0 ? "" : "?" + string.Join('&', query)).ConfigureAwait(false);
            return context.Print(migrated, RenderVm);
        }));
        return command;
    }

    private static Command Delete()
    {
        var name = NameArgument();
        var command = new Command("delete", "Delete a stopped VM (its disk files are kept)") { name };
        command.SetAction(CliContext.Action(async (context, parse, ct) =>
        {
            var vmName = parse.GetValue(name)!;
            if (await context.Client.DeleteVmAsync(vmName, ct).ConfigureAwait(false) is { } error)
            {
                return CliContext.Fail(error);
            }

            if (context.Output == OutputFormat.Json)
            {
                Console.Out.WriteLine($$"""{"deleted":"{{vmName}}"}""");
            }
            else
            {
                Console.Out.WriteLine($"deleted VM '{vmName}'");
            }

            return ExitCodes.Ok;
        }));
        return command;
    }

    private static void RenderVmTable(VmView[] vms)
    {
        // In a cluster, the host each VM is placed on comes second.
        var clustered = vms.Any(vm => vm.Managed);
        var table = new Table().Border(TableBorder.Simple).AddColumn("NAME");
        if (clustered)
        {
            table.AddColumn("HOST");
        }

        table.AddColumns("STATE", "DESIRED", "CPUS", "MEMORY", "PID", "ACCEL", "UPTIME");
        foreach (var vm in vms)
        {
            string[] host = clustered ? [Markup.Escape(vm.Host ?? "-")] : [];
            table.AddRow([
                Markup.Escape(vm.Name),
                .. host,
                StateMarkup(vm.State),
                Display.Name(vm.Desired),
                vm.Spec.VCpus.ToString(CultureInfo.InvariantCulture),
                $"{vm.Spec.MemoryMiB} MiB",
                vm.Pid?.ToString(CultureInfo.InvariantCulture) ?? "-",
                vm.Accelerator is { } a ? Display.Name(a) : "-",
                Uptime(vm),
            ]);
        }

        CliContext.Write(table);
    }

    private static string Ms(TimeSpan? span) => span is { } s ? $"{s.TotalMilliseconds:0} ms" : "unknown";

    private static void RenderVm(VmView vm)
    {
        var grid = new Grid().AddColumn().AddColumn();
        grid.AddRow("name", Markup.Escape(vm.Name));
        grid.AddRow("state", StateMarkup(vm.State));
        grid.AddRow("desired", Display.Name(vm.Desired));
        if (vm.Managed)
        {
            grid.AddRow("host", Markup.Escape(vm.Host ?? "not placed"));
        }

        if (vm.Waiting is { } waiting)
        {
            grid.AddRow("waiting", Markup.Escape(waiting));
        }

        if (vm.Migration is { } migration)
        {
            grid.AddRow("migrating", Markup.Escape($"from {migration.Source} to {migration.Target} since {migration.Since:HH:mm:ss}"));
        }

        if (vm.LastMigration is { } last)
        {
            grid.AddRow("last migration", Markup.Escape(last.Succeeded
                ? $"{last.Source} -> {last.Target} at {last.At:u}: {last.Duration.TotalSeconds:0.0} s, downtime {Ms(last.Downtime)} (QEMU), running again after {Ms(last.ResumedAfter)}"
                : $"{last.Source} -> {last.Target} at {last.At:u} failed: {last.Error}"));
        }

        if (vm.Rules is { } rules && (rules.AntiAffinity is not null || rules.PreferredHosts.Count > 0 || rules.Dependencies.Count > 0))
        {
            grid.AddRow("placement", Markup.Escape(string.Join("; ", new[]
            {
                rules.AntiAffinity is { } group ? $"anti-affinity group {group}" : null,
                rules.PreferredHosts.Count > 0 ? $"prefers {string.Join(", ", rules.PreferredHosts)}" : null,
                rules.Dependencies.Count > 0 ? $"starts after {string.Join(", ", rules.Dependencies)} (waits up to {rules.WaitForDependencies.TotalSeconds:0} s)" : null,
            }.OfType<string>())));
        }

        if (vm.Home is { } home)
        {
            grid.AddRow("home", Markup.Escape($"{home} (goes back when it is undrained)"));
        }

        grid.AddRow("vcpus", vm.Spec.VCpus.ToString(CultureInfo.InvariantCulture));
        grid.AddRow("memory", $"{vm.Spec.MemoryMiB} MiB");
        grid.AddRow("pid", vm.Pid?.ToString(CultureInfo.InvariantCulture) ?? "-");
        grid.AddRow("accelerator", vm.Accelerator is { } a ? Display.Name(a) : "-");
        grid.AddRow("uptime", Uptime(vm));
        if (vm.LastExit is { } exit)
        {
            grid.AddRow("last exit", Markup.Escape(exit));
        }

        for (var i = 0; i < vm.Spec.Disks.Count; i++)
        {
            var disk = vm.Spec.Disks[i];
            var source = disk.Volume is { } volume ? $"volume {volume}" : $"{disk.Path} ({disk.Format})";
            grid.AddRow($"disk {i}", Markup.Escape(source + (disk.ReadOnly ? ", read-only" : string.Empty)));
        }

        foreach (var nic in vm.Spec.Nics)
        {
            var forwards = string.Join(", ", nic.Forwards.Select(f => $"{f.HostAddress}:{f.HostPort} -> {f.GuestPort}"));
            grid.AddRow("nic", Markup.Escape(nic.Mode == NicMode.Bridge ? $"bridge {nic.Bridge}" : $"user {forwards}"));
        }

        if (vm.Spec.Kernel is { } kernel)
        {
            grid.AddRow("kernel", Markup.Escape(kernel.Kernel));
        }

        if (vm.Spec.HealthCheck is { } health)
        {
            grid.AddRow("health check", Markup.Escape(health));
        }

        CliContext.Write(grid);
    }

    private static string StateMarkup(VmState state) => state switch
    {
        VmState.Running => "[green]running[/]",
        VmState.Crashed => "[red]crashed[/]",
        VmState.Paused => "[yellow]paused[/]",
        _ => Display.Name(state),
    };

    private static string Uptime(VmView vm) =>
        vm.StartedAt is { } started ? FormatDuration(DateTimeOffset.UtcNow - started) : "-";

    private static string FormatDuration(TimeSpan span) =>
        span.TotalDays >= 1 ? $"{(int)span.TotalDays}d{span.Hours}h"
        : span.TotalHours >= 1 ? $"{(int)span.TotalHours}h{span.Minutes}m"
        : span.TotalMinutes >= 1 ? $"{(int)span.TotalMinutes}m{span.Seconds}s"
        : $"{(int)span.TotalSeconds}s";
}
