using System.Buffers;
using System.IO.Pipelines;
using Ferry.Storage.Replication.Wire;
using Ferry.Storage.Volumes;
using Microsoft.Extensions.Logging;

namespace Ferry.Storage.Replication;

/// <summary>How a replica session ended.</summary>
public readonly record struct ReplicaSessionEnd(LinkErrorCode? Error, string Reason);

/// <summary>
/// The secondary's side of one replication link: checks the primary's Hello against this copy (same
/// volume, same size, an epoch not below the highest seen), then applies its writes in order and
/// acknowledges each. A frame carrying an epoch below the highest this copy has seen is refused
/// and the link closed, with nothing written (DESIGN invariant 2); a higher epoch is recorded durably
/// before the write it came with is applied. Peer bytes never throw: bad input ends the link with an
/// Error frame.
/// </summary>
public sealed partial class ReplicaSession
{
    private readonly Volume _volume;
    private readonly PipeReader _input;
    private readonly PipeWriter _output;
    private readonly ILogger _logger;

    public ReplicaSession(Volume volume, PipeReader input, PipeWriter output, ILogger logger)
    {
        _volume = volume;
        _input = input;
        _output = output;
        _logger = logger;
    }

    public async Task<ReplicaSessionEnd> RunAsync(CancellationToken ct)
    {
        var end = await ServeAsync(ct).ConfigureAwait(false);
        if (end.Error is { } code)
        {
            LinkFrameWriter.WriteError(_output, (uint)code, end.Reason);
            await _output.FlushAsync(ct).ConfigureAwait(false);
            LogRefused(_logger, _volume.Name, code, end.Reason);
        }

        await _output.CompleteAsync().ConfigureAwait(false);
        await _input.CompleteAsync().ConfigureAwait(false);
        return end;
    }

    private async Task<ReplicaSessionEnd> ServeAsync(CancellationToken ct)
    {
        if (await ReadFrameAsync(ct).ConfigureAwait(false) is not { } first)
        {
            return new(null, "the peer left before saying hello");
        }

        if (first.Frame is not { Header.Type: LinkFrameType.Hello } helloFrame)
        {
            return first.Error is { } e ? new(LinkErrorCode.ProtocolViolation, e) : new(LinkErrorCode.ProtocolViolation, "the first frame must be Hello");
        }

        if (CheckHello(helloFrame.Hello) is { } refusal)
        {
            return refusal;
        }

        await SayHelloAsync(ct).ConfigureAwait(false);
        while (await ReadFrameAsync(ct).ConfigureAwait(false) is { } next)
        {
            if (next.Frame is not { } frame)
            {
                return new(LinkErrorCode.ProtocolViolation, next.Error!);
            }

            var outcome = await ApplyAsync(frame, ct).ConfigureAwait(false);
            if (outcome is { } stop)
            {
                return stop;
            }

            await _output.FlushAsync(ct).ConfigureAwait(false);
        }

        return new(null, "the peer closed the link");
    }

    private ReplicaSessionEnd? CheckHello(in HelloFrame hello)
    {
        var us = _volume.Metadata.Current;
        if (hello.VolumeId != us.VolumeId)
        {
            return new(LinkErrorCode.WrongVolume, $"this copy belongs to volume {us.VolumeId} ('{us.Name}'), not {hello.VolumeId}");
        }

        if (hello.Size != us.Size)
        {
            return new(LinkErrorCode.WrongSize, $"volume '{us.Name}' is {us.Size} bytes here, the peer says {hello.Size}");
        }

        return hello.Epoch < us.HighestEpoch
            ? new(LinkErrorCode.StaleEpoch, $"the peer's epoch {hello.Epoch} is below {us.HighestEpoch}, the highest this copy of '{us.Name}' has seen")
            : null;
    }

    private async Task SayHelloAsync(CancellationToken ct)
    {
        var us = _volume.Metadata.Current;
        LinkFrameWriter.WriteHello(_output, new HelloFrame(
            us.VolumeId, us.Size, us.Generations, us.HighestEpoch, 0, DiskState.UpToDate, CopyRole.Secondary, ReplicationProtocol.C, CrashedPrimary: false));
        await _output.FlushAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Applies one frame; a non-null result ends the link.</summary>
    private async ValueTask<ReplicaSessionEnd?> ApplyAsync(LinkFrame frame, CancellationToken ct)
    {
        switch (frame.Header.Type)
        {
            case LinkFrameType.Write:
                return await ApplyWriteAsync(frame.Write, ct).ConfigureAwait(false);

            case LinkFrameType.Zero:
                var zero = frame.Zero;
                if (AcceptEpoch(zero.Epoch) is { } staleZero)
                {
                    return staleZero;
                }

                var zeroFlags = (zero.Fua ? WriteZeroesFlags.Fua : WriteZeroesFlags.None) | (zero.MayTrim ? WriteZeroesFlags.None : WriteZeroesFlags.NoHole);
                var zeroStatus = zero.Offset > _volume.Size - zero.Length
                    ? AckStatus.Invalid
                    : await RunAsync(_volume.WriteZeroesAsync(zero.Offset, zero.Length, zeroFlags, ct)).ConfigureAwait(false);
                LinkFrameWriter.WriteAck(_output, new AckFrame(zero.Sequence, AckKind.Written, zeroStatus));
                return null;

            case LinkFrameType.Flush:
                if (AcceptEpoch(frame.Flush.Epoch) is { } staleFlush)
                {
                    return staleFlush;
                }

                var flushStatus = await RunAsync(_volume.FlushAsync(ct)).ConfigureAwait(false);
                LinkFrameWriter.WriteAck(_output, new AckFrame(frame.Flush.Sequence, AckKind.Written, flushStatus));
                return null;

            case LinkFrameType.Ping:
                LinkFrameWriter.WritePing(_output, frame.Nonce, pong: true);
                return null;

            case LinkFrameType.Pong:
                return null;

            case LinkFrameType.Error:
                return new(null, $"the peer ended the link: {frame.ErrorMessage} (code {frame.ErrorCode})");

            default:
                return new(LinkErrorCode.ProtocolViolation, $"a secondary does not expect {frame.Header.Type} frames");
        }
    }

    private async ValueTask<ReplicaSessionEnd?> ApplyWriteAsync(WriteFrame write, CancellationToken ct)
    {
        // The data follows the frame; it is read whole before anything is decided, so that a refused
        // write is skipped cleanly and the link stays in step.
        var buffer = ArrayPool<byte>.Shared.Rent(write.Length);
        try
        {
            if (!await ReadDataAsync(buffer.AsMemory(0, write.Length), ct).ConfigureAwait(false))
            {
                return new(null, "the peer left in the middle of a write");
            }

            if (AcceptEpoch(write.Epoch) is { } stale)
            {
                return stale;
            }

            var status = write.Offset > _volume.Size - write.Length
                ? AckStatus.Invalid
                : await RunAsync(_volume.WriteAsync(write.Offset, buffer.AsMemory(0, write.Length), write.Fua, ct)).ConfigureAwait(false);
            LinkFrameWriter.WriteAck(_output, new AckFrame(write.Sequence, AckKind.Written, status));
            return null;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Refuses a stale epoch; records a newer one durably before the frame that carries it takes effect.</summary>
    private ReplicaSessionEnd? AcceptEpoch(ulong epoch)
    {
        var highest = _volume.Metadata.Current.HighestEpoch;
        if (epoch < highest)
        {
            return new(LinkErrorCode.StaleEpoch, $"refused a write of epoch {epoch}: this copy of '{_volume.Name}' has seen epoch {highest}; nothing was written");
        }

        if (epoch > highest)
        {
            _volume.Metadata.Update(s => s with { HighestEpoch = epoch });
        }

        return null;
    }

    private static async ValueTask<AckStatus> RunAsync(ValueTask operation)
    {
        try
        {
            await operation.ConfigureAwait(false);
            return AckStatus.Ok;
        }
        catch (BlockDeviceException e)
        {
            return e.Error switch
            {
                BlockError.NoSpace => AckStatus.NoSpace,
                BlockError.Invalid => AckStatus.Invalid,
                _ => AckStatus.IoError,
            };
        }
    }

    /// <summary>The next frame, an error text for bad input, or null at the end of the stream.</summary>
    private async ValueTask<(LinkFrame? Frame, string? Error)?> ReadFrameAsync(CancellationToken ct)
    {
        while (true)
        {
            var result = await _input.ReadAsync(ct).ConfigureAwait(false);
            var reader = new SequenceReader<byte>(result.Buffer);
            var status = LinkFrameParser.TryParse(ref reader, out var frame, out var error);
            if (status == OperationStatus.Done)
            {
                _input.AdvanceTo(reader.Position);
                return (frame, null);
            }

            if (status == OperationStatus.InvalidData)
            {
                _input.AdvanceTo(result.Buffer.Start);
                return (null, $"invalid frame: {error}");
            }

            if (result.IsCompleted)
            {
                _input.AdvanceTo(result.Buffer.End);
                return result.Buffer.IsEmpty ? null : (null, "the link ended inside a frame");
            }

            _input.AdvanceTo(result.Buffer.Start, result.Buffer.End);
        }
    }

    private async ValueTask<bool> ReadDataAsync(Memory<byte> destination, CancellationToken ct)
    {
        while (!destination.IsEmpty)
        {
            var result = await _input.ReadAsync(ct).ConfigureAwait(false);
            var take = (int)Math.Min(destination.Length, result.Buffer.Length);
            result.Buffer.Slice(0, take).CopyTo(destination.Span);
            destination = destination[take..];
            _input.AdvanceTo(result.Buffer.GetPosition(take));
            if (!destination.IsEmpty && result.IsCompleted)
            {
                return false;
            }
        }

        return true;
    }

    [LoggerMessage(2100, LogLevel.Warning, "volume {VolumeId}: replication link refused ({Code}): {Reason}")]
    private static partial void LogRefused(ILogger logger, string volumeId, LinkErrorCode code, string reason);
}
