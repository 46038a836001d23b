using System.CommandLine;
using System.Globalization;
using Ferry.Agent.Api;
using Ferry.Storage.Volumes;
using Spectre.Console;

namespace Ferry.Cli.Commands;

/// <summary>`ferry volume ...`: the block volumes VM disks live on.</summary>
internal static class VolumeCommands
{
    public static Command Build()
    {
        var volume = new Command("volume", "Create and manage volumes (thin-provisioned block devices served over NBD)");
        volume.Subcommands.Add(Create());
        volume.Subcommands.Add(List());
        volume.Subcommands.Add(Show());
        volume.Subcommands.Add(Resize());
        volume.Subcommands.Add(Delete());
        return volume;
    }

    private static Argument<string> NameArgument() => new("name") { Description = "The volume's name" };

    private static Option<string> SizeOption() => new("--size") { Description = "Size, e.g. 10G or 512M (a plain number is bytes)", Required = true };

    private static Command Create()
    {
        var name = NameArgument();
        var size = SizeOption();
        var command = new Command("create", "Create a volume (allocates nothing until written)") { name, size };
        command.SetAction(CliContext.Action(async (context, parse, ct) =>
        {
            if (!SizeParser.ParseBytes(parse.GetValue(size)!).TryGetValue(out var bytes, out var error))
            {
                return CliContext.Fail(error);
            }

            return context.Print(await context.Client.CreateVolumeAsync(new CreateVolumeRequest(parse.GetValue(name)!, bytes), ct).ConfigureAwait(false), Render);
        }));
        return command;
    }

    private static Command List()
    {
        var command = new Command("list", "List the volumes");
        command.SetAction(CliContext.Action(async (context, _, ct) =>
            context.Print(await context.Client.ListVolumesAsync(ct).ConfigureAwait(false), RenderTable)));
        return command;
    }

    private static Command Show()
    {
        var name = NameArgument();
        var command = new Command("show", "Show one volume in detail") { name };
        command.SetAction(CliContext.Action(async (context, parse, ct) =>
            context.Print(await context.Client.GetVolumeAsync(parse.GetValue(name)!, ct).ConfigureAwait(false), Render)));
        return command;
    }

    private static Command Resize()
    {
        var name = NameArgument();
        var size = SizeOption();
        var shrink = new Option<bool>("--shrink") { Description = "Allow making it smaller (the data past the new end is lost)" };
        var command = new Command("resize", "Change a volume's size") { name, size, shrink };
        command.SetAction(CliContext.Action(async (context, parse, ct) =>
        {
            if (!SizeParser.ParseBytes(parse.GetValue(size)!).TryGetValue(out var bytes, out var error))
            {
                return CliContext.Fail(error);
            }

            var request = new ResizeVolumeRequest(bytes, parse.GetValue(shrink));
            return context.Print(await context.Client.ResizeVolumeAsync(parse.GetValue(name)!, request, ct).ConfigureAwait(false), Render);
        }));
        return command;
    }

    private static Command Delete()
    {
        var name = NameArgument();
        var command = new Command("delete", "Delete a volume and its data (refused while a VM uses it)") { name };
        command.SetAction(CliContext.Action(async (context, parse, ct) =>
        {
            var volume = parse.GetValue(name)!;
            if (await context.Client.DeleteVolumeAsync(volume, ct).ConfigureAwait(false) is { } error)
            {
                return CliContext.Fail(error);
            }

            Console.Out.WriteLine(context.Output == OutputFormat.Json ? $$"""{"deleted":"{{volume}}"}""" : $"deleted volume '{volume}'");
            return ExitCodes.Ok;
        }));
        return command;
    }

    private static void RenderTable(VolumeInfo[] volumes)
    {
        var table = new Table().Border(TableBorder.Simple).AddColumns("NAME", "SIZE", "ALLOCATED", "DISK", "ROLE", "CONNECTION", "EPOCH");
        foreach (var v in volumes)
        {
            table.AddRow(
                Markup.Escape(v.Name), Bytes(v.Size), Bytes(v.Allocated), Display.Name(v.Copy.Disk), Display.Name(v.Copy.Role), Display.Name(v.Copy.Connection),
                v.HighestEpoch.ToString(CultureInfo.InvariantCulture));
        }

        CliContext.Write(table);
    }

    private static void Render(VolumeInfo v)
    {
        var grid = new Grid().AddColumn().AddColumn();
        grid.AddRow("name", Markup.Escape(v.Name));
        grid.AddRow("id", v.Id.ToString());
        grid.AddRow("size", $"{Bytes(v.Size)} ({v.Size} bytes)");
        grid.AddRow("allocated", Bytes(v.Allocated));
        grid.AddRow("disk", Display.Name(v.Copy.Disk));
        grid.AddRow("role", Display.Name(v.Copy.Role));
        grid.AddRow("connection", Display.Name(v.Copy.Connection));
        grid.AddRow("epoch", v.HighestEpoch.ToString(CultureInfo.InvariantCulture));
        grid.AddRow("generation", v.Generations.Current.ToString("X16", CultureInfo.InvariantCulture));
        grid.AddRow("nbd export", Markup.Escape(v.Name));
        grid.AddRow("data file", Markup.Escape(v.DataPath));
        CliContext.Write(grid);
    }

    private static string Bytes(long bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
        double value = bytes;
        var unit = 0;
        while (value >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }

        return unit == 0 ? $"{bytes} B" : string.Create(CultureInfo.InvariantCulture, $"{value:0.#} {units[unit]}");
    }
}
