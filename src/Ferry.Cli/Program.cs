using System.CommandLine;
using Ferry.Cli;
using Ferry.Cli.Commands;

var root = new RootCommand("Ferry: highly available VMs on mirrored disks")
{
    CliContext.ServerOption,
    CliContext.OutputOption,
    CliContext.VerboseOption,
};
root.Subcommands.Add(AgentCommand.Build());
root.Subcommands.Add(WatchdogCommand.Build());
root.Subcommands.Add(VmCommands.Build());
root.Subcommands.Add(VolumeCommands.Build());
root.Subcommands.Add(ClusterCommands.BuildCluster());
root.Subcommands.Add(ClusterCommands.BuildNode());
root.Subcommands.Add(LabCommands.Build());

var parse = root.Parse(args);
if (parse.Errors.Count > 0)
{
    foreach (var error in parse.Errors)
    {
        Console.Error.WriteLine($"error: {error.Message}");
    }

    Console.Error.WriteLine("(see: ferry --help)");
    return ExitCodes.InvalidArgument;
}

return await parse.InvokeAsync();
