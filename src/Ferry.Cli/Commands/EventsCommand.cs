using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Ferry.Agent.Events;
using Spectre.Console;

namespace Ferry.Cli.Commands;

/// <summary>`ferry vm events [NAME]`: what happened, oldest first.</summary>
internal static class EventsCommand
{
    public static Command Build(string verb, string description, bool nameRequired)
    {
        var name = new Argument<string?>("name") { Description = "Only this VM's events", Arity = nameRequired ? ArgumentArity.ExactlyOne : ArgumentArity.ZeroOrOne };
        var follow = new Option<bool>("--follow", "-f") { Description = "Keep printing new events until interrupted" };
        var command = new Command(verb, description) { name, follow };
        command.SetAction(CliContext.Action(async (context, parse, ct) =>
        {
            var vm = parse.GetValue(name);
            if (!parse.GetValue(follow))
            {
                return context.Print(await context.Client.EventsAsync(vm, ct).ConfigureAwait(false), RenderTable);
            }

            var query = "api/v1/events?follow=true" + (vm is null ? string.Empty : $"&vm={Uri.EscapeDataString(vm)}");
            if (!(await context.Client.OpenStreamAsync(query, ct).ConfigureAwait(false)).TryGetValue(out var stream, out var error))
            {
                return CliContext.Fail(error);
            }

            try
            {
                await foreach (var e in AgentClient.FollowEventsAsync(stream, ct).ConfigureAwait(false))
                {
                    Console.Out.WriteLine(context.Output == OutputFormat.Json ? JsonSerializer.Serialize(e, FerryJson.Options) : Line(e));
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                // Ctrl-C ends following.
            }

            return ExitCodes.Ok;
        }));
        return command;
    }

    private static string Line(FerryEvent e) =>
        string.Create(CultureInfo.InvariantCulture, $"{e.Time:yyyy-MM-dd HH:mm:ss.fff} {e.Type,-18} {e.Vm ?? "-",-16} {e.Message}");

    private static void RenderTable(FerryEvent[] events)
    {
        var table = new Table().Border(TableBorder.Simple).AddColumns("TIME", "TYPE", "VM", "MESSAGE");
        foreach (var e in events)
        {
            table.AddRow(
                e.Time.ToString("yyyy-MM-dd HH:mm:ss.fff", CultureInfo.InvariantCulture),
                Markup.Escape(e.Type),
                Markup.Escape(e.Vm ?? "-"),
                Markup.Escape(e.Message));
        }

        CliContext.Write(table);
    }
}
