using System.CommandLine;
using Ferry.Agent.Watchdog;

namespace Ferry.Cli.Commands;

/// <summary>`ferry watchdog`: the host's last line of self-fencing, started by the agent.</summary>
internal static class WatchdogCommand
{
    public static Command Build()
    {
        var data = new Option<string>("--data") { Description = "The agent's data directory", DefaultValueFactory = _ => "/var/lib/ferry" };
        var device = new Option<string>("--device") { Description = "Hardware watchdog to feed while the lease holds (none, or a path such as /dev/watchdog)", DefaultValueFactory = _ => "none" };
        var command = new Command("watchdog", "Kill this host's cluster VMs when the agent's lease runs out unrenewed (the agent starts it)") { data, device };
        command.SetAction(async (parse, ct) =>
        {
            var directory = Path.GetFullPath(parse.GetValue(data)!);
            if (!Directory.Exists(directory))
            {
                return CliContext.Fail(FerryError.InvalidArgument($"data directory '{directory}' does not exist"));
            }

            var path = parse.GetValue(device) is "none" or null ? null : Path.GetFullPath(parse.GetValue(device)!);
            return await WatchdogHost.RunAsync(directory, path, ct).ConfigureAwait(false) is { } error ? CliContext.Fail(error) : ExitCodes.Ok;
        });
        return command;
    }
}
