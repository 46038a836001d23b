using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using Ferry.Storage.Replication.Wire;
using Ferry.Storage.Volumes;
using Microsoft.Extensions.Logging;

namespace Ferry.Storage.Replication;

/// <summary>How a replica session ended.</summary>
public readonly record struct ReplicaSessionEnd(LinkErrorCode? Error, string Reason);

/// <summary>A secondary's link from its primary, for <c>ferry volume show</c>.</summary>
public sealed record IncomingStatus(string From, ConnectionState Connection, ulong PrimaryEpoch, long ResyncBytesReceived, string? LastError);

/// <summary>
/// The secondary's side of one replication link: checks the primary's Hello against this copy (same
/// volume, same size, an epoch not below the highest seen), answers with its own state, then applies
/// the primary's frames in order and acknowledges each: writes, zeroes, flushes, and the resync's
/// bitmap exchange, begin and end. A frame carrying an epoch below the highest this copy has seen is
/// refused and the link closed, with nothing written (DESIGN invariant 2); a higher epoch is recorded
/// durably before the frame that carries it takes effect. Peer bytes never throw: bad input ends the
/// link with an Error frame.
/// </summary>
public sealed partial class ReplicaSession : IDisposable
{
    private readonly Func<Guid, ReplicatedVolume?> _resolve;
    private readonly PipeReader _input;
    private readonly PipeWriter _output;
    private readonly LinkSplice? _splice;
    private readonly Action? _interrupt;
    private readonly string _from;
    private readonly ILogger _logger;
    /// <summary>
    /// A write's data is written in pieces of at least this much (or its rest): TLS hands over at most 16 KiB
    /// a read, and each write to the file has a cost of its own. Small enough to arrive well within the idle
    /// timeout on any link the primary still counts as alive (64 KiB per half second).
    /// </summary>
    private const int GatherAtLeast = 128 << 10;

    private readonly CancellationTokenSource _stop = new();
    private readonly Action _heard;
    private long _heardAt = Stopwatch.GetTimestamp();
    private volatile bool _working;
    private readonly TaskCompletionSource _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ReplicatedVolume? _copy;
    private ReplicationProtocol _protocol;
    private ulong _primaryEpoch;
    private string _peerHost = "?";
    private long _resyncBytes;
    private volatile string? _lastError;

    /// <param name="splice">Takes the data of large writes straight from a plain TCP link's socket (owned by the session); null for other streams.</param>
    /// <param name="interrupt">Wakes a read blocked on the link (shuts its receiving side down) when the session must end: for blocking streams.</param>
    public ReplicaSession(Func<Guid, ReplicatedVolume?> resolve, PipeReader input, PipeWriter output, string from, ILogger logger, LinkSplice? splice = null, Action? interrupt = null)
    {
        _resolve = resolve;
        _input = input;
        _output = output;
        _splice = splice;
        _interrupt = interrupt;
        _heard = Heard;
        _from = from;
        _logger = logger;
    }

    /// <summary>
    /// How long the session waits for the primary (a frame, more of a write's data, room to answer) before it
    /// gives up on it; the primary pings twice a second. Time spent on this copy's disk does not count.
    /// </summary>
    public TimeSpan IdleTimeout { get; init; } = PeerLink.DeadAfter;

    public ConnectionState Connection { get; private set; } = ConnectionState.Connecting;

    /// <summary>The protocol the primary on the other end replicates with.</summary>
    public ReplicationProtocol Protocol => _protocol;

    /// <summary>The primary's host, as its Hello names it.</summary>
    public string PeerHost => _peerHost;

    /// <summary>The highest epoch the primary on this link has sent.</summary>
    public ulong PrimaryEpoch => Volatile.Read(ref _primaryEpoch);

    public IncomingStatus Status() => new($"{_peerHost} ({_from})", Connection, PrimaryEpoch, Interlocked.Read(ref _resyncBytes), _lastError);

    public async Task<ReplicaSessionEnd> RunAsync(CancellationToken ct)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, _stop.Token);
        using var interrupt = _interrupt is { } wake ? linked.Token.Register(wake) : default;
        using var served = new CancellationTokenSource();
        var watching = WatchAsync(linked, served.Token);
        ReplicaSessionEnd end;
        try
        {
            end = await ServeAsync(linked.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            end = Stopped();
        }
        catch (IOException e)
        {
            end = new(null, e.Message);
        }

        await served.CancelAsync().ConfigureAwait(false);
        await watching.ConfigureAwait(false);

        // A blocked read that the interrupt woke sees the link end: the session ends for the reason it was stopped.
        if (end.Error is null && linked.IsCancellationRequested)
        {
            end = Stopped();
        }

        try
        {
            if (end.Error is { } code)
            {
                LinkFrameWriter.WriteError(_output, (uint)code, end.Reason);
                await _output.FlushAsync(CancellationToken.None).ConfigureAwait(false);
                LogRefused(_logger, _copy?.Name ?? "?", code, end.Reason);
            }
        }
        catch (IOException)
        {
            // The primary is gone already.
        }

        _lastError = end.Reason;
        Connection = ConnectionState.StandAlone;
        _copy?.DetachIncoming(this);
        await _output.CompleteAsync().ConfigureAwait(false);
        await _input.CompleteAsync().ConfigureAwait(false);
        _ended.TrySetResult();
        return end;
    }

    private ReplicaSessionEnd Stopped() =>
        new(_stop.IsCancellationRequested ? LinkErrorCode.ShuttingDown : null,
            _stop.IsCancellationRequested ? "this copy took another link or changed role" : $"the primary sent nothing for {IdleTimeout.TotalSeconds:0.#} s");

    /// <summary>Ends the session (a newer link took over, or this copy is being promoted) and waits until it has.</summary>
    public async Task StopAsync()
    {
        if (!_ended.Task.IsCompleted)
        {
            await _stop.CancelAsync().ConfigureAwait(false);
        }

        await _ended.Task.ConfigureAwait(false);
    }

    public void Dispose()
    {
        _stop.Dispose();
        _splice?.Dispose();
    }

    /// <summary>Ends the session (through <paramref name="idle"/>) once it has waited for the primary longer than <see cref="IdleTimeout"/>.</summary>
    private async Task WatchAsync(CancellationTokenSource idle, CancellationToken ct)
    {
        try
        {
            while (true)
            {
                await Task.Delay(IdleTimeout / 4, ct).ConfigureAwait(false);
                if (!_working && Stopwatch.GetElapsedTime(Volatile.Read(ref _heardAt)) > IdleTimeout)
                {
                    await idle.CancelAsync().ConfigureAwait(false);
                    return;
                }
            }
        }
        catch (OperationCanceledException)
        {
            // The session ended first.
        }
    }

    /// <summary>Something came from the primary (a frame, part of a write's data): it is there, however slow the link.</summary>
    private void Heard() => Volatile.Write(ref _heardAt, Stopwatch.GetTimestamp());

    /// <summary>This copy works on a frame (its disk may take long): the primary is not waited for meanwhile.</summary>
    private void BeginWork() => _working = true;

    /// <summary>The work is done (or waits for more of the primary's data): waiting for the primary starts again now.</summary>
    private void EndWork()
    {
        Heard();
        _working = false;
    }

    private async Task<ReplicaSessionEnd> ServeAsync(CancellationToken ct)
    {
        if (await LinkReader.ReadFrameAsync(_input, ct).ConfigureAwait(false) is not { } first)
        {
            return new(null, "the peer left before saying hello");
        }

        if (first.Frame is not { Header.Type: LinkFrameType.Hello } helloFrame)
        {
            return new(LinkErrorCode.ProtocolViolation, first.Error ?? "the first frame must be Hello");
        }

        if (CheckHello(helloFrame.Hello) is { } refusal)
        {
            return refusal;
        }

        var copy = _copy!;
        _peerHost = helloFrame.Hello.Host;
        _protocol = helloFrame.Hello.Protocol;
        _primaryEpoch = helloFrame.Hello.Epoch;
        // Resumed in the caller's context: a link read with blocking calls goes on on its own thread (LinkReceiver).
        if (await copy.AttachIncomingAsync(this, helloFrame.Hello).ConfigureAwait(true) is { } conflict)
        {
            _copy = null;
            return new(LinkErrorCode.RoleConflict, conflict);
        }


        // The primary's epoch is the highest this copy has seen from now on, even before it writes:
        // an older primary that calls next is refused at its Hello.
        _ = AcceptEpoch(copy.Volume, helloFrame.Hello.Epoch);
        Connection = ConnectionState.Connected; // before the answer: a second primary that calls next finds this link in step
        await SayHelloAsync(copy, ct).ConfigureAwait(false);
        LogAttached(_logger, copy.Name, _from, helloFrame.Hello.Epoch);
        while (await LinkReader.ReadFrameAsync(_input, ct).ConfigureAwait(false) is { } next)
        {
            if (next.Frame is not { } frame)
            {
                return new(LinkErrorCode.ProtocolViolation, next.Error!);
            }

            BeginWork();
            var outcome = await ApplyAsync(copy, frame, ct).ConfigureAwait(false);
            EndWork();
            if (outcome is { } stop)
            {
                return stop;
            }

            if (!NextFrameArriving())
            {
                await _output.FlushAsync(ct).ConfigureAwait(false);
            }
        }

        return new(null, "the peer closed the link");
    }

    /// <summary>
    /// Whether the next frame has started to arrive: then the acknowledgements written so far go out with
    /// the next one's, one send for a burst. Nothing is consumed.
    /// </summary>
    private bool NextFrameArriving()
    {
        if (!_input.TryRead(out var buffered))
        {
            return false;
        }

        _input.AdvanceTo(buffered.Buffer.Start);
        return buffered.Buffer.Length >= LinkWire.HeaderSize;
    }

    private ReplicaSessionEnd? CheckHello(in HelloFrame hello)
    {
        if (hello.Role != CopyRole.Primary)
        {
            return new(LinkErrorCode.RoleConflict, "only a primary opens a replication link");
        }

        if (_resolve(hello.VolumeId) is not { } copy)
        {
            return new(LinkErrorCode.WrongVolume, $"this host holds no copy of volume {hello.VolumeId}");
        }

        _copy = copy;
        var us = copy.Volume.Metadata.Current;
        if (hello.Size != us.Size)
        {
            return new(LinkErrorCode.WrongSize, $"volume '{us.Name}' is {us.Size} bytes here, the peer says {hello.Size}");
        }

        return hello.Epoch < us.HighestEpoch
            ? new(LinkErrorCode.StaleEpoch, $"the peer's epoch {hello.Epoch} is below {us.HighestEpoch}, the highest this copy of '{us.Name}' has seen")
            : null;
    }

    private async Task SayHelloAsync(ReplicatedVolume copy, CancellationToken ct)
    {
        var view = copy.LocalView();
        var s = copy.Volume.Metadata.Current;
        LinkFrameWriter.WriteHello(_output, new HelloFrame(
            s.VolumeId, s.Size, view.Ids, s.HighestEpoch, view.DirtyBlocks, view.Disk, CopyRole.Secondary, _protocol, view.CrashedPrimary, copy.Host));
        await _output.FlushAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Applies one frame; a non-null result ends the link.</summary>
    private async ValueTask<ReplicaSessionEnd?> ApplyAsync(ReplicatedVolume copy, LinkFrame frame, CancellationToken ct)
    {
        var volume = copy.Volume;
        switch (frame.Header.Type)
        {
            case LinkFrameType.Write:
                return await ApplyWriteAsync(copy, frame.Write, (frame.Header.Flags & LinkFrameFlags.Resync) != 0, ct).ConfigureAwait(false);

            case LinkFrameType.Zero:
                var zero = frame.Zero;
                if (AcceptEpoch(volume, zero.Epoch) is { } staleZero)
                {
                    return staleZero;
                }

                var zeroFlags = (zero.Fua ? WriteZeroesFlags.Fua : WriteZeroesFlags.None) | (zero.MayTrim ? WriteZeroesFlags.None : WriteZeroesFlags.NoHole);
                var zeroStatus = zero.Offset > volume.Size - zero.Length
                    ? AckStatus.Invalid
                    : ZeroOrStatus(volume, zero.Offset, zero.Length, zeroFlags);
                AckWritten(zero.Sequence, zeroStatus, "zeroing", zero.Offset, zero.Length);
                return null;

            case LinkFrameType.Flush:
                if (AcceptEpoch(volume, frame.Flush.Epoch) is { } staleFlush)
                {
                    return staleFlush;
                }

                var flushStatus = await RunAsync(volume.FlushAsync(ct)).ConfigureAwait(false);
                AckWritten(frame.Flush.Sequence, flushStatus, "flush", 0, 0);
                return null;

            case LinkFrameType.BitmapRequest:
                await SendBitmapAsync(copy.Bitmap, ct).ConfigureAwait(false);
                return null;

            case LinkFrameType.ChecksumRequest:
                return AnswerChecksums(volume, frame.ChecksumRequest);

            case LinkFrameType.SyncBegin:
                if (AcceptEpoch(volume, frame.Sync.Epoch) is { } staleBegin)
                {
                    return staleBegin;
                }

                if (copy.Settings.Role == CopyRole.Primary)
                {
                    return new(LinkErrorCode.CannotSync, $"the copy of '{copy.Name}' on {copy.Host} is primary and cannot be a resync target; two primaries must be in step");
                }

                if (copy.FollowsAnotherPrimary(this))
                {
                    return new(LinkErrorCode.CannotSync, $"the copy of '{copy.Name}' on {copy.Host} follows another primary too and takes a resync from neither; a second primary must find it in step");
                }

                // From here the copy is a partial copy of the source's data until SyncEnd (GenerationRules).
                volume.Metadata.Update(s => s with { Generations = GenerationRules.BeginSyncAsTarget(frame.Sync.Ids), Disk = DiskState.Inconsistent });
                Connection = ConnectionState.SyncTarget;
                LogSyncBegins(_logger, copy.Name, frame.Sync.Full ? "full" : "bitmap");
                LinkFrameWriter.WriteAck(_output, new AckFrame(frame.Sync.Sequence, AckKind.Written, AckStatus.Ok));
                return null;

            case LinkFrameType.SyncEnd:
                if (AcceptEpoch(volume, frame.Sync.Epoch) is { } staleEnd)
                {
                    return staleEnd;
                }

                await volume.FlushAsync(ct).ConfigureAwait(false);
                var ids = GenerationRules.FinishSyncAsTarget(frame.Sync.Ids);
                copy.Bitmap.ClearAll();
                volume.Metadata.WriteBitmap(copy.Bitmap);
                volume.Metadata.Update(s => s with { Generations = ids, Disk = DiskState.UpToDate, LastSharedCurrent = ids.Current, CrashedPrimary = false });
                Connection = ConnectionState.Connected;
                LogSyncEnded(_logger, copy.Name, Interlocked.Read(ref _resyncBytes));
                LinkFrameWriter.WriteAck(_output, new AckFrame(frame.Sync.Sequence, AckKind.Written, AckStatus.Ok));
                return null;

            case LinkFrameType.Generation:
                if (AcceptEpoch(volume, frame.Sync.Epoch) is { } staleGeneration)
                {
                    return staleGeneration;
                }

                // In step with the primary, this copy holds every write of the generation the primary left: it
                // moves on with it, so that a copy that missed those writes is told apart from this one. So does
                // the other primary of a handoff (the two write in turn, never both at once).
                if (Connection != ConnectionState.Connected || (copy.Settings.Role == CopyRole.Primary && !copy.Settings.AllowTwoPrimaries))
                {
                    return new(LinkErrorCode.ProtocolViolation, $"a new generation for a copy that is not an in-step secondary ({Connection}, {copy.Settings.Role})");
                }

                if (copy.Settings.Role == CopyRole.Primary && copy.ResyncsAPeer)
                {
                    // Its resync would end with the target at the new generation without the writes the other
                    // primary made it, and clear that target's Outdated mark: the other primary goes on without this one.
                    return new(LinkErrorCode.CannotSync, $"the copy of '{copy.Name}' on {copy.Host} is resyncing another copy and cannot take the other primary's new generation");
                }

                volume.Metadata.Update(s => s with { Generations = frame.Sync.Ids, LastSharedCurrent = frame.Sync.Ids.Current });
                LinkFrameWriter.WriteAck(_output, new AckFrame(frame.Sync.Sequence, AckKind.Written, AckStatus.Ok));
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

    private async ValueTask<ReplicaSessionEnd?> ApplyWriteAsync(ReplicatedVolume copy, WriteFrame write, bool resync, CancellationToken ct)
    {
        var volume = copy.Volume;

        // A stale primary is refused before any of its data is looked at; the link ends with that.
        if (AcceptEpoch(volume, write.Epoch) is { } stale)
        {
            return stale;
        }

        var received = _protocol == ReplicationProtocol.B && !write.Fua && !resync;
        var status = write.Offset > volume.Size - write.Length ? AckStatus.Invalid : AckStatus.Ok;
        var ended = received
            ? await ReceiveThenWriteAsync(volume, write, status, ct).ConfigureAwait(false)
            : await WriteAsItArrivesAsync(volume, write, status, ct).ConfigureAwait(false);
        if (ended is not { } written)
        {
            return new(null, "the peer left in the middle of a write");
        }

        if (resync)
        {
            Interlocked.Add(ref _resyncBytes, write.Length);
        }

        AckWritten(write.Sequence, written, resync ? "resync write" : "write", write.Offset, write.Length);
        return null;
    }

    /// <summary>
    /// Answers a change or flush. A failure is this host's to fix (a full or failing disk): it is logged here,
    /// and the primary, told by the answer, drops the link and has this copy outdated.
    /// </summary>
    private void AckWritten(ulong sequence, AckStatus status, string what, long offset, long length)
    {
        if (status != AckStatus.Ok && _copy is { } copy && copy.FailedChanges.Passes($"{what}: {status}", copy.Time.GetUtcNow()))
        {
            LogChangeFailed(_logger, copy.Name, what, length, offset, AckStatusText.Of(status));
        }

        LinkFrameWriter.WriteAck(_output, new AckFrame(sequence, AckKind.Written, status));
    }

    /// <summary>
    /// Writes the data straight from the link's buffers, piece by piece as it arrives: no copy, and the
    /// disk works while the rest is on the wire. After a failed piece the rest is read and dropped, so the
    /// link stays in step; the Ack carries the failure. Null when the link ends inside the data.
    /// </summary>
    private async ValueTask<AckStatus?> WriteAsItArrivesAsync(Volume volume, WriteFrame write, AckStatus status, CancellationToken ct)
    {
        var at = write.Offset;
        long left = write.Length;
        while (left > 0)
        {
            if (!_input.TryRead(out var result))
            {
                // Nothing of it buffered yet: a large rest goes from the socket to the file without passing through here.
                if (_splice is not null && left >= LinkSplice.AtLeast)
                {
                    if (SpliceRest(volume, at, left, status) is not { } spliced)
                    {
                        return null;
                    }

                    status = spliced;
                    break;
                }

                EndWork();
                result = await _input.ReadAsync(ct).ConfigureAwait(false);
                while (result.Buffer.Length < Math.Min(left, GatherAtLeast) && !result.IsCompleted)
                {
                    // Gathered before it is written, but each piece that arrives shows the primary is there.
                    Heard();
                    _input.AdvanceTo(result.Buffer.Start, result.Buffer.End);
                    result = await _input.ReadAsync(ct).ConfigureAwait(false);
                }

                BeginWork();
            }

            var piece = result.Buffer.Slice(0, Math.Min(left, result.Buffer.Length));
            foreach (var segment in piece)
            {
                if (status == AckStatus.Ok)
                {
                    status = WriteOrStatus(volume, at, segment.Span, fua: false);
                }

                at += segment.Length;
            }

            left -= piece.Length;
            _input.AdvanceTo(piece.End);
            if (left > 0 && result.IsCompleted)
            {
                return null;
            }
        }

        return write.Fua && status == AckStatus.Ok ? await RunAsync(volume.FlushAsync(ct)).ConfigureAwait(false) : status;
    }

    /// <summary>The rest of a write's data, spliced from the socket into the file; after a failed piece the rest is dropped. Null when the link ends inside it.</summary>
    private AckStatus? SpliceRest(Volume volume, long at, long left, AckStatus status)
    {
        var splice = _splice!;
        while (left > 0)
        {
            EndWork();
            var moved = splice.Fill((int)Math.Min(left, SplicePipe.Capacity));
            BeginWork();
            if (moved == 0)
            {
                return null;
            }

            if (status == AckStatus.Ok)
            {
                try
                {
                    volume.WriteFrom(splice.Pipe, at, moved);
                }
                catch (BlockDeviceException e)
                {
                    status = Status(e);
                }
            }

            if (status != AckStatus.Ok)
            {
                splice.Pipe.Drop(); // what a failed write left in the pipe, and every piece after it
            }

            at += moved;
            left -= moved;
        }

        return status;
    }

    /// <summary>Protocol B: the whole write is read into memory and acknowledged as received before it is written.</summary>
    private async ValueTask<AckStatus?> ReceiveThenWriteAsync(Volume volume, WriteFrame write, AckStatus status, CancellationToken ct)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(write.Length);
        try
        {
            EndWork();
            var whole = await LinkReader.ReadDataAsync(_input, buffer.AsMemory(0, write.Length), ct, _heard).ConfigureAwait(false);
            BeginWork();
            if (!whole)
            {
                return null;
            }

            LinkFrameWriter.WriteAck(_output, new AckFrame(write.Sequence, AckKind.Received, AckStatus.Ok));
            await _output.FlushAsync(ct).ConfigureAwait(false);
            return status == AckStatus.Ok ? WriteOrStatus(volume, write.Offset, buffer.AsSpan(0, write.Length), fua: false) : status;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Checksums of this copy's range, taken after every write before the request was applied (a verify's snapshot).</summary>
    private ReplicaSessionEnd? AnswerChecksums(Volume volume, ChecksumRequestFrame request)
    {
        if (AcceptEpoch(volume, request.Epoch) is { } stale)
        {
            return stale;
        }

        if (request.Offset > volume.Size - request.Length)
        {
            return new(LinkErrorCode.ProtocolViolation, $"checksums asked for bytes {request.Offset}+{request.Length}, past the end of '{volume.Name}' ({volume.Size} bytes)");
        }

        var length = (int)request.Length;
        var data = ArrayPool<byte>.Shared.Rent(length);
        var checksums = ArrayPool<ulong>.Shared.Rent(BlockChecksums.Count(length));
        try
        {
            volume.Read(request.Offset, data.AsSpan(0, length));
            var answer = checksums.AsSpan(0, BlockChecksums.Count(length));
            BlockChecksums.Compute(data.AsSpan(0, length), answer);
            LinkFrameWriter.WriteChecksums(_output, request.Sequence, answer);
        }
        catch (BlockDeviceException e)
        {
            LinkFrameWriter.WriteAck(_output, new AckFrame(request.Sequence, AckKind.Written, Status(e)));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(data);
            ArrayPool<ulong>.Shared.Return(checksums);
        }

        return null;
    }

    private async Task SendBitmapAsync(DirtyBitmap bitmap, CancellationToken ct)
    {
        const int WordsPerFrame = 128 * 1024;
        for (var first = 0; ; first += WordsPerFrame)
        {
            var last = WriteBitmapFrame(bitmap, first, WordsPerFrame);
            await _output.FlushAsync(ct).ConfigureAwait(false);
            if (last)
            {
                return;
            }
        }
    }

    private bool WriteBitmapFrame(DirtyBitmap bitmap, int first, int maxWords)
    {
        var words = bitmap.Words;
        var count = Math.Min(maxWords, words.Length - first);
        var last = first + count >= words.Length;
        LinkFrameWriter.WriteBitmap(_output, new BitmapFrame(first, count * sizeof(ulong), last));
        _output.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(words.Slice(first, count)));
        return last;
    }

    /// <summary>Refuses a stale epoch; records a newer one durably before the frame that carries it takes effect.</summary>
    private ReplicaSessionEnd? AcceptEpoch(Volume volume, ulong epoch)
    {
        var highest = volume.Metadata.Current.HighestEpoch;
        if (epoch < highest)
        {
            return new(LinkErrorCode.StaleEpoch, $"refused a write of epoch {epoch}: this copy of '{volume.Name}' has seen epoch {highest}; nothing was written");
        }

        if (epoch > highest)
        {
            volume.Metadata.Update(s => s with { HighestEpoch = epoch });
            _primaryEpoch = epoch;
        }

        return null;
    }

    private static AckStatus WriteOrStatus(Volume volume, long offset, ReadOnlySpan<byte> data, bool fua)
    {
        try
        {
            volume.Write(offset, data, fua);
            return AckStatus.Ok;
        }
        catch (BlockDeviceException e)
        {
            return Status(e);
        }
    }

    private static AckStatus ZeroOrStatus(Volume volume, long offset, long length, WriteZeroesFlags flags)
    {
        try
        {
            volume.WriteZeroes(offset, length, flags);
            return AckStatus.Ok;
        }
        catch (BlockDeviceException e)
        {
            return Status(e);
        }
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
            return Status(e);
        }
    }

    private static AckStatus Status(BlockDeviceException e) => e.Error switch
    {
        BlockError.NoSpace => AckStatus.NoSpace,
        BlockError.Invalid => AckStatus.Invalid,
        _ => AckStatus.IoError,
    };

    [LoggerMessage(2100, LogLevel.Warning, "volume {VolumeId}: replication link refused ({Code}): {Reason}")]
    private static partial void LogRefused(ILogger logger, string volumeId, LinkErrorCode code, string reason);

    [LoggerMessage(2104, LogLevel.Warning, "volume {VolumeId}: this copy failed a {What} of {Length} bytes at {Offset}: {Error}; the primary will mark it Outdated")]
    private static partial void LogChangeFailed(ILogger logger, string volumeId, string what, long length, long offset, string error);

    [LoggerMessage(2101, LogLevel.Information, "volume {VolumeId}: secondary of the primary at {From}, epoch {Epoch}")]
    private static partial void LogAttached(ILogger logger, string volumeId, string from, ulong epoch);

    [LoggerMessage(2102, LogLevel.Information, "volume {VolumeId}: {Kind} resync from the primary begins")]
    private static partial void LogSyncBegins(ILogger logger, string volumeId, string kind);

    [LoggerMessage(2103, LogLevel.Information, "volume {VolumeId}: resync finished, {Bytes} bytes received; this copy is UpToDate")]
    private static partial void LogSyncEnded(ILogger logger, string volumeId, long bytes);
}
