namespace Ferry.Storage.Nbd;

/// <summary>proto.md "Error values": the only errors a reply may carry.</summary>
internal enum NbdErrno : uint
{
    None = 0,
    Perm = 1,
    Io = 5,
    NoMemory = 12,
    Invalid = 22,
    NoSpace = 28,
    Overflow = 75,
    NotSupported = 95,
    Shutdown = 108,
}
