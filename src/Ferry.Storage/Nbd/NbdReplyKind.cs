namespace Ferry.Storage.Nbd;

/// <summary>What a queued transmission reply carries.</summary>
internal enum NbdReplyKind : byte
{
    /// <summary>Success without payload.</summary>
    Done,

    /// <summary>An error; <see cref="NbdReply.Error"/> says which.</summary>
    Error,

    /// <summary>A read's data at <see cref="NbdReply.Offset"/>, in the reply's buffer.</summary>
    Data,

    /// <summary>A base:allocation block status payload (context id and descriptors), encoded in the reply's buffer.</summary>
    BlockStatus,
}
