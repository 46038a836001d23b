namespace Ferry.Storage.Nbd;

/// <summary>
/// A reply on its way to the connection's single writer. The writer owns <see cref="Buffer"/> (rented from the
/// server's pool) from the moment the reply is queued, and returns it once the bytes are in the pipe.
/// </summary>
internal readonly record struct NbdReply(ulong Cookie, NbdReplyKind Kind, NbdErrno Error, ulong Offset, byte[]? Buffer, int Length)
{
    public static NbdReply Done(ulong cookie) => new(cookie, NbdReplyKind.Done, NbdErrno.None, 0, null, 0);

    public static NbdReply Failed(ulong cookie, NbdErrno error) => new(cookie, NbdReplyKind.Error, error, 0, null, 0);
}
