using System.Text.Json;
using System.Text.Json.Serialization;

namespace Ferry.Cluster.State;

/// <summary>
/// A change of cluster state, as it travels through the replicated log. Applying one is a pure function
/// of the state and the command: the time it carries was read once, by the host that proposed it.
/// A command is applied at most once by <see cref="Id"/>; proposing it again returns the first outcome.
/// </summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "type")]
[JsonDerivedType(typeof(InitializeCluster), "initialize-cluster")]
[JsonDerivedType(typeof(IssueJoinToken), "issue-join-token")]
[JsonDerivedType(typeof(JoinHost), "join-host")]
[JsonDerivedType(typeof(RemoveHost), "remove-host")]
[JsonDerivedType(typeof(FenceHost), "fence-host")]
[JsonDerivedType(typeof(UnfenceHost), "unfence-host")]
[JsonDerivedType(typeof(SetFenceAgent), "set-fence-agent")]
[JsonDerivedType(typeof(SetMaintenance), "set-maintenance")]
[JsonDerivedType(typeof(SetClusterSettings), "set-cluster-settings")]
[JsonDerivedType(typeof(CreateVolume), "create-volume")]
[JsonDerivedType(typeof(DeleteVolume), "delete-volume")]
[JsonDerivedType(typeof(PromoteCopy), "promote-copy")]
[JsonDerivedType(typeof(DemoteCopy), "demote-copy")]
[JsonDerivedType(typeof(OutdateCopy), "outdate-copy")]
[JsonDerivedType(typeof(ClearOutdated), "clear-outdated")]
[JsonDerivedType(typeof(DefineVm), "define-vm")]
[JsonDerivedType(typeof(SetVmDesiredState), "set-vm-desired-state")]
[JsonDerivedType(typeof(PlaceVm), "place-vm")]
[JsonDerivedType(typeof(DeleteVm), "delete-vm")]
[JsonDerivedType(typeof(BeginMigration), "begin-migration")]
[JsonDerivedType(typeof(CompleteMigration), "complete-migration")]
[JsonDerivedType(typeof(AbortMigration), "abort-migration")]
[JsonDerivedType(typeof(RestartVm), "restart-vm")]
[JsonDerivedType(typeof(RelocateVm), "relocate-vm")]
[JsonDerivedType(typeof(GiveUpVm), "give-up-vm")]
[JsonDerivedType(typeof(VmHealthy), "vm-healthy")]
[JsonDerivedType(typeof(ReportHost), "report-host")]
[JsonDerivedType(typeof(RecordEvent), "record-event")]
[JsonDerivedType(typeof(CompactLog), "compact-log")]
public abstract record ClusterCommand
{
    public Guid Id { get; init; } = Guid.NewGuid();

    /// <summary>When the proposing host made the command; the only clock the state machine knows.</summary>
    public DateTimeOffset At { get; init; }

    /// <summary>The event kind: the command's name as the log spells it (join-host, promote-copy).</summary>
    [JsonIgnore]
    public virtual string Kind => JsonNamingPolicy.KebabCaseLower.ConvertName(GetType().Name);

    /// <summary>Whether applying it adds an event (a report, repeated as things change, does not).</summary>
    [JsonIgnore]
    public virtual bool RecordsEvent => true;

    [JsonIgnore]
    public virtual string? HostSubject => null;

    [JsonIgnore]
    public virtual string? VmSubject => null;

    [JsonIgnore]
    public virtual string? VolumeSubject => null;

    /// <summary>Checks the command against <paramref name="state"/> and returns the state it leads to, or why not.</summary>
    internal abstract Result<StateChange> Execute(ClusterState state);
}

/// <summary>The state a command led to and what it says about it.</summary>
internal readonly record struct StateChange(ClusterState State, string Message, ulong? Epoch = null);
