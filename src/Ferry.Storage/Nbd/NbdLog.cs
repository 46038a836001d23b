using Microsoft.Extensions.Logging;

namespace Ferry.Storage.Nbd;

/// <summary>The NBD server's log messages; event ids 3000-3099.</summary>
internal static partial class NbdLog
{
    [LoggerMessage(3000, LogLevel.Information, "NBD server listening on {Endpoint}")]
    public static partial void Listening(ILogger logger, string endpoint);

    [LoggerMessage(3001, LogLevel.Debug, "NBD connection {ConnectionId} accepted from {Remote}")]
    public static partial void Accepted(ILogger logger, long connectionId, string remote);

    [LoggerMessage(3002, LogLevel.Information, "NBD connection {ConnectionId}: handshake -> transmission on export '{Export}' (size {Size}, flags {Flags})")]
    public static partial void Attached(ILogger logger, long connectionId, string export, long size, NbdTransmissionFlags flags);

    [LoggerMessage(3003, LogLevel.Debug, "NBD connection {ConnectionId} closed: {Reason}")]
    public static partial void Closed(ILogger logger, long connectionId, string reason);

    [LoggerMessage(3004, LogLevel.Information, "NBD connection {ConnectionId}: protocol violation, disconnecting: {Problem}")]
    public static partial void ProtocolViolation(ILogger logger, long connectionId, string problem);

    [LoggerMessage(3005, LogLevel.Debug, "NBD connection {ConnectionId}: option {Option} answered {Reply}")]
    public static partial void OptionRefused(ILogger logger, long connectionId, NbdOption option, NbdOptionReply reply);

    [LoggerMessage(3006, LogLevel.Debug, "NBD connection {ConnectionId}: {Command} at {Offset}+{Length} failed with {Error}")]
    public static partial void RequestFailed(ILogger logger, long connectionId, NbdCommand command, ulong offset, uint length, NbdErrno error);

    [LoggerMessage(3007, LogLevel.Error, "NBD connection {ConnectionId}: {Command} at {Offset}+{Length} failed unexpectedly")]
    public static partial void RequestCrashed(ILogger logger, long connectionId, NbdCommand command, ulong offset, uint length, Exception exception);

    [LoggerMessage(3008, LogLevel.Warning, "NBD server on {Endpoint}: accept failed")]
    public static partial void AcceptFailed(ILogger logger, string endpoint, Exception exception);

    [LoggerMessage(3009, LogLevel.Trace, "NBD connection {ConnectionId}: {Command} at {Offset}+{Length} flags {Flags} cookie {Cookie}")]
    public static partial void Request(ILogger logger, long connectionId, NbdCommand command, ulong offset, uint length, NbdCommandFlags flags, ulong cookie);

    [LoggerMessage(3010, LogLevel.Information, "NBD connection {ConnectionId}: TLS handshake failed")]
    public static partial void TlsFailed(ILogger logger, long connectionId, Exception exception);

    [LoggerMessage(3011, LogLevel.Debug, "NBD connection {ConnectionId}: TLS established ({Protocol})")]
    public static partial void TlsEstablished(ILogger logger, long connectionId, System.Security.Authentication.SslProtocols protocol);

    [LoggerMessage(3012, LogLevel.Warning, "NBD connection {ConnectionId} failed")]
    public static partial void ConnectionFailed(ILogger logger, long connectionId, Exception exception);

    [LoggerMessage(3013, LogLevel.Information, "NBD connection {ConnectionId}: client flags {ClientFlags} are not fixed newstyle, disconnecting")]
    public static partial void NotFixedNewstyle(ILogger logger, long connectionId, uint clientFlags);

    [LoggerMessage(3014, LogLevel.Information, "NBD connection {ConnectionId}: option {Option} with {Length} bytes of data, disconnecting")]
    public static partial void OptionTooLong(ILogger logger, long connectionId, NbdOption option, uint length);
}
