using System.Collections.Immutable;
using System.Text.RegularExpressions;

namespace Ferry.Cluster.State;

/// <summary>
/// How the leader switches a host off: a ClusterLabs-style fence agent, a program that reads
/// <c>key=value</c> lines on its standard input (<c>action=off</c> plus <see cref="Parameters"/>, such
/// as <c>ip</c>, <c>username</c>, <c>password</c>, <c>plug</c>) and exits 0 when it succeeded.
/// </summary>
/// <param name="Command">The program and its arguments, the program by absolute path; it must exist on every host that may lead.</param>
/// <param name="TimeoutSeconds">How long one run may take before it counts as failed.</param>
public sealed partial record FenceAgent(ImmutableList<string> Command, ImmutableSortedDictionary<string, string> Parameters, int TimeoutSeconds = FenceAgent.DefaultTimeoutSeconds)
{
    public const int DefaultTimeoutSeconds = 20;

    /// <summary>Parameters whose values are secrets: views show that they are set, never their value.</summary>
    public static bool IsSecret(string key) => key.Contains("passw", StringComparison.Ordinal) || key.Contains("secret", StringComparison.Ordinal) || key.Contains("key", StringComparison.Ordinal);

    public FerryError? Invalid()
    {
        if (Command.Count == 0 || !Command[0].StartsWith('/'))
        {
            return FerryError.InvalidArgument("a fence agent's command starts with the program's absolute path, e.g. /usr/sbin/fence_ipmilan");
        }

        if (TimeoutSeconds is < 1 or > 600)
        {
            return FerryError.InvalidArgument($"invalid fence agent timeout {TimeoutSeconds} s: give 1 to 600 seconds");
        }

        foreach (var (key, value) in Parameters)
        {
            if (!KeyPattern().IsMatch(key) || key == "action")
            {
                return FerryError.InvalidArgument($"invalid fence agent parameter '{key}': lower-case letters, digits and _ (action is Ferry's to give)");
            }

            if (value.Contains('\n', StringComparison.Ordinal) || value.Contains('\r', StringComparison.Ordinal))
            {
                return FerryError.InvalidArgument($"fence agent parameter '{key}' must be one line");
            }
        }

        return null;
    }

    [GeneratedRegex("^[a-z][a-z0-9_]{0,63}$")]
    private static partial Regex KeyPattern();
}

/// <summary>Sets (or, with null, removes) the fence agent that switches <paramref name="Host"/> off when it fails.</summary>
public sealed record SetFenceAgent(string Host, FenceAgent? Agent) : ClusterCommand
{
    public override string? HostSubject => Host;

    internal override Result<StateChange> Execute(ClusterState state)
    {
        if (state.Host(Host) is not { } host)
        {
            return FerryError.NotFound($"no host named '{Host}' in the cluster");
        }

        if (host.Role != HostRole.Member)
        {
            return FerryError.InvalidArgument($"host '{Host}' is a witness: it runs nothing that needs fencing");
        }

        if (Agent?.Invalid() is { } invalid)
        {
            return invalid;
        }

        return new StateChange(state with { Hosts = state.Hosts.SetItem(Host, host with { FenceAgent = Agent }) },
            Agent is null ? $"host {Host} has no fence agent" : $"host {Host} is fenced by {Agent.Command[0]}");
    }
}
