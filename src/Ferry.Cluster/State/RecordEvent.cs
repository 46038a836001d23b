using System.Text.RegularExpressions;

namespace Ferry.Cluster.State;

/// <summary>
/// Something a host saw happen that changes no state but belongs in the cluster's timeline (a host
/// judged failed, a VM started, a VM's first health answer), so that each recovery can be read
/// afterwards from `ferry cluster events`, stamped by the host that saw it.
/// </summary>
/// <param name="What">The event's kind, lower-case words joined by dashes (host-failed, vm-started, vm-healthy).</param>
public sealed partial record RecordEvent(string What, string Message, string? Host = null, string? Vm = null, string? Volume = null) : ClusterCommand
{
    public const int MaxMessageLength = 1000;

    public override string Kind => What;

    public override string? HostSubject => Host;

    public override string? VmSubject => Vm;

    public override string? VolumeSubject => Volume;

    internal override Result<StateChange> Execute(ClusterState state)
    {
        if (!KindPattern().IsMatch(What))
        {
            return FerryError.InvalidArgument($"invalid event kind '{What}': lower-case words joined by dashes");
        }

        return Message.Length is 0 or > MaxMessageLength
            ? FerryError.InvalidArgument($"an event's message has 1 to {MaxMessageLength} characters")
            : new StateChange(state, Message);
    }

    [GeneratedRegex("^[a-z]+(-[a-z]+){0,4}$")]
    private static partial Regex KindPattern();
}
