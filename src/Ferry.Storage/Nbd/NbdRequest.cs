namespace Ferry.Storage.Nbd;

/// <summary>A transmission request header (proto.md "Request message"); a write's payload follows it on the wire.</summary>
internal readonly record struct NbdRequest(NbdCommand Command, NbdCommandFlags Flags, ulong Cookie, ulong Offset, uint Length);
