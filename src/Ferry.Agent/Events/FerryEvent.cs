namespace Ferry.Agent.Events;

/// <summary>Something that happened, as users read it afterwards: "vm.crashed demo: ...".</summary>
/// <param name="Sequence">Increases by one per event on this host; lets a follower resume.</param>
public sealed record FerryEvent(long Sequence, DateTimeOffset Time, string Type, string? Vm, string Message);
