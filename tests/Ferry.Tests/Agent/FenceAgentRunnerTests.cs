using System.Collections.Immutable;
using Ferry.Agent.Cluster;
using Ferry.Cluster.State;

namespace Ferry.Tests.Agent;

/// <summary>A fence agent is a real program: these run /bin/sh as one.</summary>
public class FenceAgentRunnerTests
{
    private static FenceAgent Shell(string script, params string[] args) =>
        new(["/bin/sh", "-c", script, .. args], ImmutableSortedDictionary<string, string>.Empty.Add("ip", "10.0.0.5").Add("plug", "h1"), TimeoutSeconds: 2);

    [Fact]
    public async Task The_agent_reads_the_action_and_its_parameters_on_standard_input_and_succeeds_by_exit_code_0()
    {
        using var dir = new TempDirectory();
        var seen = Path.Combine(dir.Path, "stdin");
        Assert.Null(await FenceAgentRunner.RunAsync(Shell("cat > \"$0\"", seen), "off", TimeProvider.System, CancellationToken.None));
        Assert.Equal("action=off\nip=10.0.0.5\nplug=h1\n", await File.ReadAllTextAsync(seen));
    }

    [Fact]
    public async Task A_failing_slow_or_missing_agent_is_an_error_that_says_why()
    {
        Assert.Contains("exited with 3: no power", (await FenceAgentRunner.RunAsync(Shell("echo no power >&2; exit 3"), "off", TimeProvider.System, CancellationToken.None))!.Message);
        Assert.Contains("did not finish within 2 s", (await FenceAgentRunner.RunAsync(Shell("sleep 30"), "off", TimeProvider.System, CancellationToken.None))!.Message);
        Assert.Contains("could not run", (await FenceAgentRunner.RunAsync(Shell("") with { Command = ["/nonexistent/fence_x"] }, "off", TimeProvider.System, CancellationToken.None))!.Message);
    }
}
