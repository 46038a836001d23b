namespace Ferry.Cluster.State;

/// <summary>Applies committed commands: the one place cluster state changes.</summary>
public static class ClusterStateMachine
{
    public static (ClusterState State, CommandOutcome Outcome) Apply(ClusterState state, ClusterCommand command)
    {
        var earlier = state.Applied.Find(a => a.Id == command.Id);
        if (earlier is not null)
        {
            return (state, earlier.Outcome);
        }

        var result = command.Execute(state);
        var (next, outcome) = result.TryGetValue(out var change, out var error)
            ? (change.State, new CommandOutcome(null, change.Message, change.Epoch))
            : (state, CommandOutcome.Failed(error));
        var recorded = command.RecordsEvent || !outcome.IsOk ? Record(next, command, outcome) : next;
        return (Remember(recorded, command.Id, outcome), outcome);
    }

    private static ClusterState Record(ClusterState state, ClusterCommand command, CommandOutcome outcome)
    {
        var message = outcome.IsOk ? outcome.Message : "refused: " + outcome.Message;
        var events = state.Events.Add(new ClusterEvent(state.NextEventSequence, command.At, command.Kind, message, command.HostSubject, command.VmSubject, command.VolumeSubject));
        if (events.Count > ClusterState.EventCapacity)
        {
            events = events.RemoveRange(0, events.Count - ClusterState.EventCapacity);
        }

        return state with { Events = events, NextEventSequence = state.NextEventSequence + 1 };
    }

    private static ClusterState Remember(ClusterState state, Guid id, CommandOutcome outcome)
    {
        var applied = state.Applied.Add(new AppliedCommand(id, outcome));
        if (applied.Count > ClusterState.RememberedCommands)
        {
            applied = applied.RemoveAt(0);
        }

        return state with { Applied = applied };
    }
}
