using System.CommandLine;

namespace Ferry.Cli.Commands;

/// <summary>`ferry vm console NAME`: the VM's serial console output.</summary>
internal static class ConsoleCommand
{
    public static Command Build()
    {
        var name = VmCommands.NameArgument();
        var follow = new Option<bool>("--follow", "-f") { Description = "Keep printing new output until interrupted" };
        var tail = new Option<long?>("--tail") { Description = "Start this many bytes before the end" };
        var command = new Command("console", "Print the VM's serial console") { name, follow, tail };
        command.SetAction(CliContext.Action(async (context, parse, ct) =>
        {
            var query = $"api/v1/vms/{Uri.EscapeDataString(parse.GetValue(name)!)}/console?follow={(parse.GetValue(follow) ? "true" : "false")}";
            if (parse.GetValue(tail) is { } bytes)
            {
                query += $"&tail={bytes}";
            }

            if (!(await context.Client.OpenStreamAsync(query, ct).ConfigureAwait(false)).TryGetValue(out var stream, out var error))
            {
                return CliContext.Fail(error);
            }

            await using (stream.ConfigureAwait(false))
            {
                await using var stdout = Console.OpenStandardOutput();
                try
                {
                    await stream.CopyToAsync(stdout, ct).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                    // Ctrl-C ends a followed console.
                }
            }

            return ExitCodes.Ok;
        }));
        return command;
    }
}
