using System.ComponentModel;
using System.Text;
using Ferry.Cluster.State;
using Ferry.Hypervisor;

namespace Ferry.Agent.Cluster;

/// <summary>Runs a host's fence agent once: <c>action=ACTION</c> and the parameters on its standard input, success by exit code 0.</summary>
internal static class FenceAgentRunner
{
    public static async Task<FerryError?> RunAsync(FenceAgent agent, string action, TimeProvider time, CancellationToken ct)
    {
        var input = new StringBuilder().Append("action=").Append(action).Append('\n');
        foreach (var (key, value) in agent.Parameters)
        {
            input.Append(key).Append('=').Append(value).Append('\n');
        }

        ProcessResult result;
        try
        {
            result = await ProcessRunner.RunAsync(agent.Command[0], agent.Command.Skip(1), TimeSpan.FromSeconds(agent.TimeoutSeconds), time, ct, input.ToString()).ConfigureAwait(false);
        }
        catch (Win32Exception e)
        {
            return FerryError.Environment($"could not run fence agent {agent.Command[0]}: {e.Message}");
        }

        if (result.TimedOut)
        {
            return FerryError.Unavailable($"fence agent {agent.Command[0]} did not finish within {agent.TimeoutSeconds} s");
        }

        return result.ExitCode == 0
            ? null
            : FerryError.Environment($"fence agent {agent.Command[0]} action={action} exited with {result.ExitCode}: {LastLine(result.StandardError) ?? LastLine(result.StandardOutput) ?? "no output"}");
    }

    private static string? LastLine(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault();
}
