using System.CommandLine;
using System.Text.Json;
using Spectre.Console;

namespace Ferry.Cli;

/// <summary>What every command gets: the agent client, the chosen output format, and the one way to report errors.</summary>
internal sealed class CliContext : IDisposable
{
    private static readonly JsonSerializerOptions Indented = new(FerryJson.Options) { WriteIndented = true };

    public CliContext(AgentClient client, OutputFormat output, bool verbose)
    {
        Client = client;
        Output = output;
        Verbose = verbose;
    }

    public AgentClient Client { get; }

    public OutputFormat Output { get; }

    public bool Verbose { get; }

    public static Option<string> ServerOption { get; } = new("--server")
    {
        Description = "The agent's API address (default: $FERRY_SERVER or the local agent)",
        Recursive = true,
    };

    public static Option<OutputFormat> OutputOption { get; } = new("--output", "-o")
    {
        Description = "table (for people) or json (for scripts)",
        Recursive = true,
        DefaultValueFactory = _ => OutputFormat.Table,
    };

    public static Option<bool> VerboseOption { get; } = new("--verbose")
    {
        Description = "Show details of unexpected failures",
        Recursive = true,
    };

    /// <summary>Runs a command body with the context, turning failures into one line on stderr and an exit code.</summary>
    public static Func<ParseResult, CancellationToken, Task<int>> Action(Func<CliContext, ParseResult, CancellationToken, Task<int>> body) =>
        async (parse, ct) =>
        {
            var server = parse.GetValue(ServerOption) ?? System.Environment.GetEnvironmentVariable("FERRY_SERVER") ?? Agent.AgentOptions.DefaultListen;
            if (!Uri.TryCreate(server, UriKind.Absolute, out var uri) || (uri.Scheme != "http" && uri.Scheme != "https"))
            {
                return Fail(FerryError.InvalidArgument($"invalid --server '{server}': give an http:// or https:// address"));
            }

            using var context = new CliContext(new AgentClient(uri), parse.GetValue(OutputOption), parse.GetValue(VerboseOption));
            try
            {
                return await body(context, parse, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return ExitCodes.Failure;
            }
            catch (Exception e) when (!context.Verbose)
            {
                Console.Error.WriteLine($"error: {e.Message} (run with --verbose for details)");
                return ExitCodes.Failure;
            }
        };

    public static int Fail(FerryError error)
    {
        Console.Error.WriteLine($"error: {error.Message}");
        return ExitCodes.Of(error.Code);
    }

    /// <summary>Prints a value as JSON, or as a table through <paramref name="render"/>.</summary>
    public int Print<T>(Result<T> result, Action<T> render)
    {
        if (!result.TryGetValue(out var value, out var error))
        {
            return Fail(error);
        }

        if (Output == OutputFormat.Json)
        {
            Console.Out.WriteLine(JsonSerializer.Serialize(value, Indented));
        }
        else
        {
            render(value);
        }

        return ExitCodes.Ok;
    }

    public static void Write(Spectre.Console.Rendering.IRenderable renderable) => AnsiConsole.Write(renderable);

    public void Dispose() => Client.Dispose();
}
