using System.Buffers;
using System.Runtime.CompilerServices;
using System.Threading.Channels;

namespace Ferry.Storage.Nbd;

/// <summary>
/// The transmission phase (proto.md "Transmission"). The reader parses requests and hands each to the thread pool
/// as soon as it is complete, so requests run concurrently and replies go out in completion order. Every request
/// holds one of <see cref="NbdServerOptions.MaxRequestsInFlight"/> slots from parsing until its reply is written,
/// which bounds both memory and the reply queue.
/// </summary>
internal sealed partial class NbdConnection
{
    /// <summary>Most base:allocation descriptors in one reply; clients ask again from where it ends.</summary>
    private const int MaxExtents = 1024;

    private readonly NbdSlotGate _slots;
    private readonly Lock _freeLock = new();
    private readonly Stack<NbdRequestContext> _free = new();

    private Channel<NbdReply> _replies = null!;
    private CancellationTokenSource _transmission = null!;
    private CancellationToken _ct;
    private IBlockDevice _device = null!;
    private ulong _size;
    private bool _blockStatus;

    // Reader state, touched only by the reader.
    private bool _slotHeld;
    private NbdRequest _pendingWrite;
    private byte[]? _payload;
    private int _payloadFilled;
    private long _skip;

    private enum ReadStep
    {
        NeedData,
        NeedSlot,
        Stop,
    }

    private async Task TransmitAsync(NbdExport export, CancellationToken ct)
    {
        _device = export.Device;
        _size = (ulong)export.Device.Size;
        _blockStatus = _structured && _metaContextExport == export.Name;
        NbdLog.Attached(_logger, _id, export.Name, export.Device.Size, _transmissionFlags);

        using var transmission = CancellationTokenSource.CreateLinkedTokenSource(ct);
        _transmission = transmission;
        _ct = transmission.Token;
        using var cancelWait = _ct.UnsafeRegister(static (state, token) => ((NbdSlotGate)state!).Cancel(token), _slots);
        _replies = Channel.CreateUnbounded<NbdReply>(new UnboundedChannelOptions { SingleReader = true, AllowSynchronousContinuations = false });
        var sender = SendLoopAsync();
        string reason;
        try
        {
            reason = await ReceiveLoopAsync().ConfigureAwait(false);
        }
        finally
        {
            if (_payload is not null)
            {
                _pool.Return(_payload);
                _payload = null;
            }

            if (_slotHeld)
            {
                _slots.Release();
            }

            // Every reply holds a slot until it is written: holding them all means every request was answered.
            for (var i = 0; i < _options.MaxRequestsInFlight; i++)
            {
                await _slots.TakeAsync().ConfigureAwait(false);
            }

            _replies.Writer.Complete();
            await sender.ConfigureAwait(false);
        }

        NbdLog.Closed(_logger, _id, reason);
    }

    private async Task<string> ReceiveLoopAsync()
    {
        try
        {
            while (true)
            {
                if (!_slotHeld)
                {
                    await _slots.TakeAsync().ConfigureAwait(false);
                    _slotHeld = true;
                }

                var result = await _input.ReadAsync(_ct).ConfigureAwait(false);
                var buffer = result.Buffer;
                var step = Consume(buffer, out var consumed, out var reason);

                // Waiting for a slot, the unparsed rest is not examined: the next read must return it at once.
                _input.AdvanceTo(consumed, step == ReadStep.NeedData ? buffer.End : consumed);
                if (step == ReadStep.Stop)
                {
                    return reason;
                }

                if (step == ReadStep.NeedData && result.IsCompleted)
                {
                    return _payload is not null || _skip > 0 || !buffer.Slice(consumed).IsEmpty
                        ? "client left in the middle of a request"
                        : "client closed the connection";
                }
            }
        }
        catch (Exception e) when (IsDisconnect(e))
        {
            return _ct.IsCancellationRequested ? "connection shut down" : "connection lost";
        }
    }

    private ReadStep Consume(ReadOnlySequence<byte> buffer, out SequencePosition consumed, out string reason)
    {
        var reader = new SequenceReader<byte>(buffer);
        var step = Consume(ref reader, out reason);
        consumed = reader.Position;
        return step;
    }

    private ReadStep Consume(ref SequenceReader<byte> reader, out string reason)
    {
        reason = string.Empty;
        while (true)
        {
            if (_skip > 0)
            {
                var skipped = Math.Min(_skip, reader.Remaining);
                reader.Advance(skipped);
                _skip -= skipped;
                if (_skip > 0)
                {
                    return ReadStep.NeedData;
                }
            }

            if (_payload is not null)
            {
                var take = (int)Math.Min(_pendingWrite.Length - (uint)_payloadFilled, reader.Remaining);
                reader.TryCopyTo(_payload.AsSpan(_payloadFilled, take));
                reader.Advance(take);
                _payloadFilled += take;
                if (_payloadFilled < _pendingWrite.Length)
                {
                    return ReadStep.NeedData;
                }

                var payload = _payload;
                _payload = null;
                Dispatch(_pendingWrite, payload);
            }

            if (!_slotHeld)
            {
                if (!_slots.TryTake())
                {
                    return ReadStep.NeedSlot;
                }

                _slotHeld = true;
            }

            var status = NbdRequestParser.TryParse(ref reader, out var request, out _);
            if (status == OperationStatus.NeedMoreData)
            {
                return ReadStep.NeedData;
            }

            if (status != OperationStatus.Done)
            {
                reason = "request without the request magic";
                NbdLog.ProtocolViolation(_logger, _id, reason);
                return ReadStep.Stop;
            }

            NbdLog.Request(_logger, _id, request.Command, request.Offset, request.Length, request.Flags, request.Cookie);
            if (!Accept(request, ref reason))
            {
                return ReadStep.Stop;
            }
        }
    }

    /// <summary>Answers an invalid request at once, or starts a valid one; false when the connection must end.</summary>
    private bool Accept(in NbdRequest request, ref string reason)
    {
        if (request.Command == NbdCommand.Disconnect)
        {
            reason = "client sent NBD_CMD_DISC";
            return false;
        }

        var error = Validate(request);
        if (error != NbdErrno.None)
        {
            NbdLog.RequestFailed(_logger, _id, request.Command, request.Offset, request.Length, error);
            Post(NbdReply.Failed(request.Cookie, error));
            _slotHeld = false;
            if (request.Command == NbdCommand.Write)
            {
                if (request.Length > NbdWire.MaxPayload)
                {
                    // We will not read a payload that large, so the stream cannot be followed past it.
                    reason = "write payload over the maximum";
                    NbdLog.ProtocolViolation(_logger, _id, reason);
                    return false;
                }

                _skip = request.Length;
            }

            return true;
        }

        if (request.Command == NbdCommand.Write)
        {
            _pendingWrite = request;
            _payload = _pool.Rent((int)request.Length);
            _payloadFilled = 0;
            return true;
        }

        Dispatch(request, null);
        return true;
    }

    /// <summary>proto.md "Request types" and "Error values": which requests are refused before touching the device.</summary>
    private NbdErrno Validate(in NbdRequest request)
    {
        var allowed = NbdCommandFlags.Fua; // valid on every command once SEND_FUA is advertised
        var beyondEnd = request.Offset > _size || request.Length > _size - request.Offset;
        switch (request.Command)
        {
            case NbdCommand.Read:
                allowed |= _structured ? NbdCommandFlags.DontFragment : NbdCommandFlags.None;
                return (request.Flags & ~allowed) != 0 || request.Length == 0 || beyondEnd ? NbdErrno.Invalid
                    : request.Length > NbdWire.MaxPayload ? NbdErrno.Overflow
                    : NbdErrno.None;

            case NbdCommand.Write:
                return (request.Flags & ~allowed) != 0 || request.Length == 0 || request.Length > NbdWire.MaxPayload ? NbdErrno.Invalid
                    : _device.IsReadOnly ? NbdErrno.Perm
                    : beyondEnd ? NbdErrno.NoSpace
                    : NbdErrno.None;

            case NbdCommand.WriteZeroes:
                allowed |= NbdCommandFlags.NoHole | NbdCommandFlags.FastZero;
                return (request.Flags & ~allowed) != 0 ? NbdErrno.Invalid
                    : _device.IsReadOnly ? NbdErrno.Perm
                    : beyondEnd ? NbdErrno.NoSpace
                    : NbdErrno.None;

            case NbdCommand.Trim:
                return (request.Flags & ~allowed) != 0 || beyondEnd ? NbdErrno.Invalid
                    : _device.IsReadOnly ? NbdErrno.Perm
                    : NbdErrno.None;

            case NbdCommand.Flush:
                return (request.Flags & ~allowed) != 0 ? NbdErrno.Invalid : NbdErrno.None;

            case NbdCommand.Cache:
                return (request.Flags & ~allowed) != 0 || beyondEnd ? NbdErrno.Invalid : NbdErrno.None;

            case NbdCommand.BlockStatus:
                allowed |= NbdCommandFlags.ReqOne;
                return (request.Flags & ~allowed) != 0 || !_blockStatus || request.Length == 0 || beyondEnd ? NbdErrno.Invalid : NbdErrno.None;

            default:
                return NbdErrno.Invalid;
        }
    }

    private void Dispatch(in NbdRequest request, byte[]? payload)
    {
        NbdRequestContext? context;
        lock (_freeLock)
        {
            _free.TryPop(out context);
        }

        _slotHeld = false; // the slot now belongs to the request, and then to its reply
        (context ?? new NbdRequestContext(this)).Start(request, payload);
    }

    internal void Recycle(NbdRequestContext context)
    {
        lock (_freeLock)
        {
            _free.Push(context);
        }
    }

    /// <summary>Runs one request on the device and queues its reply. Never throws: failures become error replies.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    internal async ValueTask ExecuteAsync(NbdRequest request, byte[]? buffer)
    {
        var offset = (long)request.Offset;
        var fua = (request.Flags & NbdCommandFlags.Fua) != 0;
        try
        {
            switch (request.Command)
            {
                case NbdCommand.Read:
                    buffer = _pool.Rent((int)request.Length);
                    await _device.ReadAsync(offset, buffer.AsMemory(0, (int)request.Length), _ct).ConfigureAwait(false);
                    Post(new NbdReply(request.Cookie, NbdReplyKind.Data, NbdErrno.None, request.Offset, buffer, (int)request.Length));
                    buffer = null;
                    return;

                case NbdCommand.Write:
                    await _device.WriteAsync(offset, buffer.AsMemory(0, (int)request.Length), fua, _ct).ConfigureAwait(false);
                    break;

                case NbdCommand.Flush:
                    await _device.FlushAsync(_ct).ConfigureAwait(false);
                    break;

                case NbdCommand.Trim when request.Length != 0:
                    await _device.TrimAsync(offset, request.Length, fua, _ct).ConfigureAwait(false);
                    break;

                case NbdCommand.WriteZeroes when request.Length != 0:
                    await _device.WriteZeroesAsync(offset, request.Length, ZeroFlags(request.Flags), _ct).ConfigureAwait(false);
                    break;

                case NbdCommand.BlockStatus:
                    await BlockStatusAsync(request).ConfigureAwait(false);
                    return;

                default:
                    break; // CACHE is a hint we have no use for; empty TRIM and WRITE_ZEROES do nothing
            }

            Post(NbdReply.Done(request.Cookie));
        }
        catch (BlockDeviceException e)
        {
            var error = ToErrno(e.Error);
            NbdLog.RequestFailed(_logger, _id, request.Command, request.Offset, request.Length, error);
            Post(NbdReply.Failed(request.Cookie, error));
        }
        catch (OperationCanceledException) when (_ct.IsCancellationRequested)
        {
            Post(NbdReply.Failed(request.Cookie, NbdErrno.Shutdown));
        }
        catch (Exception e)
        {
            NbdLog.RequestCrashed(_logger, _id, request.Command, request.Offset, request.Length, e);
            Post(NbdReply.Failed(request.Cookie, NbdErrno.Io));
        }
        finally
        {
            if (buffer is not null)
            {
                _pool.Return(buffer);
            }
        }
    }

    /// <summary>base:allocation for the range (proto.md NBD_REPLY_TYPE_BLOCK_STATUS): context id, then (length, flags) pairs.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask BlockStatusAsync(NbdRequest request)
    {
        var max = (request.Flags & NbdCommandFlags.ReqOne) != 0 ? 1 : MaxExtents;
        var extents = ArrayPool<AllocationExtent>.Shared.Rent(max);
        byte[]? payload = null;
        try
        {
            var count = await _device.MapAsync((long)request.Offset, request.Length, extents.AsMemory(0, max), _ct).ConfigureAwait(false);
            payload = _pool.Rent(4 + (8 * max));
            var length = NbdReplyWriter.WriteBlockStatus(payload, NbdWire.BaseAllocationContextId, extents.AsSpan(0, Math.Min(count, max)));
            if (length == 0)
            {
                throw new BlockDeviceException(BlockError.Io, "the device described no extent");
            }

            Post(new NbdReply(request.Cookie, NbdReplyKind.BlockStatus, NbdErrno.None, request.Offset, payload, length));
            payload = null;
        }
        finally
        {
            ArrayPool<AllocationExtent>.Shared.Return(extents);
            if (payload is not null)
            {
                _pool.Return(payload);
            }
        }
    }

    private void Post(in NbdReply reply) => _replies.Writer.TryWrite(reply);

    private static WriteZeroesFlags ZeroFlags(NbdCommandFlags flags) =>
        ((flags & NbdCommandFlags.Fua) != 0 ? WriteZeroesFlags.Fua : WriteZeroesFlags.None)
        | ((flags & NbdCommandFlags.NoHole) != 0 ? WriteZeroesFlags.NoHole : WriteZeroesFlags.None)
        | ((flags & NbdCommandFlags.FastZero) != 0 ? WriteZeroesFlags.FastZero : WriteZeroesFlags.None);

    internal static NbdErrno ToErrno(BlockError error) => error switch
    {
        BlockError.NoSpace => NbdErrno.NoSpace,
        BlockError.Invalid => NbdErrno.Invalid,
        BlockError.NotSupported => NbdErrno.NotSupported,
        BlockError.ReadOnly => NbdErrno.Perm,
        _ => NbdErrno.Io,
    };
}
