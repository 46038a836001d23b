using System.Collections.Immutable;
using Ferry.Cluster.State;
using Ferry.Hypervisor;

namespace Ferry.Tests.Cluster;

/// <summary>Small states and commands for state machine tests.</summary>
internal static class ClusterFixtures
{
    public static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public static HostRecord Host(string name, HostRole role = HostRole.Member) =>
        new(name, $"{name}:7470", $"http://{name}:7480", role == HostRole.Member ? $"{name}:7481" : null, role, T0, Certificate: "cert-" + name);

    public static ClusterState Apply(this ClusterState state, params ClusterCommand[] commands)
    {
        foreach (var command in commands)
        {
            var (next, outcome) = ClusterStateMachine.Apply(state, command);
            Assert.True(outcome.IsOk, $"{command.Kind}: {outcome.Message}");
            state = next;
        }

        return state;
    }

    public static CommandOutcome Refused(this ClusterState state, ClusterCommand command)
    {
        var (next, outcome) = ClusterStateMachine.Apply(state, command);
        Assert.False(outcome.IsOk, $"{command.Kind} should have been refused");
        Assert.Equal(Content(state), Content(next));
        return outcome;
    }

    /// <summary>A state with cluster 'lab' of hosts a, b, c joined by tokens.</summary>
    public static ClusterState ThreeHosts() => ClusterState.Empty.Apply(
        new InitializeCluster(Guid.NewGuid(), "lab", "CA", Host("a")) { At = T0 },
        new IssueJoinToken("t1", "s1", T0.AddHours(1)) { At = T0 },
        new JoinHost("t1", "s1", Host("b")) { At = T0.AddMinutes(1) },
        new IssueJoinToken("t2", "s2", T0.AddHours(1)) { At = T0 },
        new JoinHost("t2", "s2", Host("c")) { At = T0.AddMinutes(2) });

    public static CreateVolume Volume(string name, params string[] hosts) => new(name, Guid.NewGuid(), 1 << 20, [.. hosts], 7) { At = T0 };

    public static DefineVm Vm(string name, params string[] volumes) =>
        new(new VmSpec { Name = name, Disks = [.. volumes.Select(v => DiskSpec.ForVolume(v))] }) { At = T0 };

    /// <summary>The state without its bookkeeping (events, remembered commands): what a command changes.</summary>
    public static string Content(ClusterState state) =>
        System.Text.Json.JsonSerializer.Serialize(state with { Events = [], Applied = [], NextEventSequence = 0 }, FerryJson.Options);

    public static ImmutableList<string> List(params string[] items) => [.. items];
}
