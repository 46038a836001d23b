using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Threading.Channels;
using Ferry.Core;
using Ferry.Storage.Replication.Wire;
using Ferry.Storage.Volumes;
using Microsoft.Extensions.Logging;

namespace Ferry.Storage.Replication;

/// <summary>
/// A primary's link to one peer copy: it dials the peer, runs the handshake and the sync decision,
/// resyncs what the peer lacks, and then carries every write in the order the primary applied it.
/// Frames are written into a pipe under the owner's ordering lock (<see cref="ReplicatedVolume"/>) and
/// sent by one loop; acknowledgements come back in order, because the peer applies frames one by one,
/// so the writes waiting for them form a queue. When the link drops, what the peer had not
/// acknowledged is marked in the bitmap and the peer is outdated before those writes complete.
/// </summary>
internal sealed partial class PeerLink : IDisposable
{
    /// <summary>Changes sent but not acknowledged, and their data; beyond either, writes wait (protocol A would otherwise queue without bound).</summary>
    private const int WindowFrames = 4096;

    private const long WindowBytes = 64 << 20;

    /// <summary>A frame that holds nothing of the send window (resync blocks, syncs, checksums have their own pacing).</summary>
    private const long NoCredit = -1;

    /// <summary>What a write sent from the file sends through the stream when the socket's buffer is full: one page.</summary>
    private const int PageSize = 4096;

    /// <summary>
    /// What the peer's TCP must acknowledge between two pings to count as a sign of life: more than the
    /// pings themselves, which the kernel of a paused (or wedged) peer still acknowledges.
    /// </summary>
    private const long AcknowledgedAtLeast = 64 << 10;

    private static readonly TimeSpan RetryDelay = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan PingInterval = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// A peer that sends nothing (not even a pong) for this long is gone. Writes the peer has not
    /// acknowledged wait this long before the primary outdates it and goes on, so it is kept well below
    /// the cluster's lease (4 s): a dead secondary freezes its primary's I/O about 2 s, not longer.
    /// </summary>
    internal static readonly TimeSpan DeadAfter = TimeSpan.FromSeconds(2);

    /// <summary>
    /// A resync has its target flush this often: blocks the target has not made durable are sent again
    /// when the link is lost (<see cref="UnflushedWrites"/>), and this bounds how much an interrupted
    /// resync repeats, at one sync per interval on the target.
    /// </summary>
    private static readonly TimeSpan ResyncFlushInterval = TimeSpan.FromMilliseconds(500);

    private readonly ReplicatedVolume _owner;
    private readonly ILogger _logger;
    private readonly Queue<PendingFrame> _pending = new();
    private readonly Lock _pendingLock = new();
    private readonly SendWindow _window = new(WindowFrames, WindowBytes);
    private readonly SemaphoreSlim _wake = new(0, 1);
    private readonly UnflushedWrites _unflushed;
    private long _lastFlushSent;

    private Pipe? _pipe;
    private long _pipeBytes;
    private readonly Queue<Lent> _lent = new();
    private volatile bool _replicating;
    private volatile bool _sendsFromFile;
    private TaskCompletionSource<bool>? _outdating;
    private bool _outdated;
    private ResyncRun? _resync;
    private ConnectionState _connection = ConnectionState.Connecting;
    private DiskState? _peerDisk;
    private string? _reason;
    private string? _decision;
    private long _resyncBytesSent;
    private bool _discardPeer;
    private ulong _receivedThrough;
    private ulong _peerCurrent;
    private bool _inStep;
    private CopyView? _lastPeerView;
    private VerifyRun? _verify;
    // Work the link does beside replicating, one at a time: a verify, or (null) a repair of the blocks marked out of sync.
    private readonly Channel<VerifyRun?> _workRequests = Channel.CreateUnbounded<VerifyRun?>(new UnboundedChannelOptions { SingleReader = true });
    private int _repairRequested;

    // A link that fails the same way on every try (a peer whose disk is full) is logged once a minute.
    private readonly RepeatFilter _losses = new(TimeSpan.FromMinutes(1));

    public PeerLink(ReplicatedVolume owner, PeerAddress peer, ILogger logger)
    {
        _owner = owner;
        Peer = peer;
        _logger = logger;
        _unflushed = new UnflushedWrites(owner.Volume.Size, owner.Bitmap.BlockSize);
    }

    public PeerAddress Peer { get; }

    /// <summary>Application writes are sent to this peer (it is Connected or a resync target).</summary>
    public bool IsReplicating => _replicating;

    /// <summary>
    /// The link is a plain TCP socket: a large write already in the local file goes out with sendfile(2),
    /// which saves the copy into the socket's buffer (with TLS the data is encrypted from the buffer anyway).
    /// </summary>
    public bool SendsFromFile => _sendsFromFile;

    /// <summary>
    /// Replicating, not a resync target and owed no repair: the peer has every block but those in flight.
    /// (A peer owed a repair may lack marked blocks: another peer's resync must not clear their marks.)
    /// </summary>
    public bool InStep
    {
        get
        {
            lock (_pendingLock)
            {
                return _replicating && _inStep && !RepairRequested;
            }
        }
    }

    /// <summary>
    /// Completes when the peer lost has been marked Outdated (true), or that failed for good (false: the
    /// writes that needed it fail). Complete and true while nothing is being outdated.
    /// </summary>
    public Task<bool> Outdating => Volatile.Read(ref _outdating)?.Task ?? Granted;

    private static readonly Task<bool> Granted = Task.FromResult(true);

    public PeerStatus Status()
    {
        lock (_pendingLock)
        {
            return new PeerStatus(
                Peer.Host, Peer.Address, _connection, _peerDisk, _outdated, _reason, _decision, _resync?.Progress(_owner.Time), Interlocked.Read(ref _resyncBytesSent), _verify?.Progress());
        }
    }

    /// <summary>
    /// Split-brain resolution: the next handshake with this peer discards its writes that the primary lacks.
    /// Refused when the copies, as last compared, are not split; the report says what will be lost.
    /// </summary>
    public Result<string> DiscardPeerOnNextConnect()
    {
        CopyView? last;
        lock (_pendingLock)
        {
            last = _lastPeerView;
        }

        if (last is not { } peer)
        {
            return FerryError.WrongState($"the copies of '{_owner.Name}' have not been compared yet: {Peer.Host} was not reached since this copy became primary");
        }

        if (!SplitBrainResolution.Discard(_owner.LocalView(), peer, CopySide.Peer).TryGetValue(out var discard, out var error))
        {
            return error;
        }

        _discardPeer = true;
        Wake();
        var lost = discard.DiscardedBlocks is { } blocks
            ? $"{blocks} block(s) ({blocks * (ulong)_owner.Bitmap.BlockSize} bytes) it wrote since the copies diverged"
            : "everything it holds (the copies share no generation)";
        return $"{Peer.Host}'s copy will be overwritten from {_owner.Host}'s, discarding {lost}: its generation {SyncDecision.Id(discard.DiscardedGeneration)} is lost; {discard.Sync.Reason}";
    }

    /// <summary>This primary acknowledged, or is about to acknowledge, writes the peer lacks: it is (being) outdated.</summary>
    public bool WentOnWithoutPeer => _outdated || Volatile.Read(ref _outdating) is not null;

    /// <summary>Cuts a waiting retry short (a resolve, a connect, new settings).</summary>
    public void Wake()
    {
        if (_wake.CurrentCount == 0)
        {
            try
            {
                _wake.Release();
            }
            catch (SemaphoreFullException)
            {
                // Someone else woke it first.
            }
        }
    }

    /// <summary>
    /// Starts an online verify against this peer: it runs in the background while the link replicates,
    /// and a resync of the blocks that differ follows it. Refused unless the peer is connected and in sync.
    /// </summary>
    public FerryError? StartVerify()
    {
        VerifyRun verify;
        lock (_pendingLock)
        {
            if (_connection != ConnectionState.Connected)
            {
                return FerryError.WrongState($"{Peer.Host}'s copy of '{_owner.Name}' is {FerryJson.Name(_connection)}, not connected and in sync; verify it once it is");
            }

            if (_verify is { IsRunning: true })
            {
                return FerryError.WrongState($"a verify of {Peer.Host}'s copy of '{_owner.Name}' is running already");
            }

            verify = _verify = new VerifyRun(_owner);
        }

        _workRequests.Writer.TryWrite(verify);
        return null;
    }

    /// <summary>A repair was asked for (<see cref="RequestRepair"/>) and has not yet taken its snapshot of the marks.</summary>
    public bool RepairRequested => Volatile.Read(ref _repairRequested) != 0;

    /// <summary>
    /// Asks for a resync, within the connection, of the blocks marked out of sync: after a change failed on
    /// this copy, which the peer may have applied, so that the copies do not stay different until the link
    /// next reconnects. One request stands for any number made before it runs.
    /// </summary>
    public void RequestRepair()
    {
        if (Interlocked.Exchange(ref _repairRequested, 1) == 0)
        {
            _workRequests.Writer.TryWrite(null);
        }
    }

    /// <summary>Room in the send window for one change with <paramref name="size"/> bytes of data.</summary>
    public ValueTask TakeCreditAsync(long size, CancellationToken ct) => _window.TakeAsync(size, ct);

    public void ReturnCredit(long size) => _window.Return(size);

    // --- Sending, under the owner's ordering lock ---------------------------------------------------

    /// <summary>Queues a write or resync block; <paramref name="waiter"/> (if any) is signalled by the acknowledgement.</summary>
    public void SendWrite(ulong sequence, ulong epoch, long offset, ReadOnlySpan<byte> data, bool fua, bool resync, AckWaiter? waiter, bool holdsCredit)
    {
        var writer = _pipe!.Writer;
        LinkFrameWriter.WriteWrite(writer, new WriteFrame(sequence, epoch, offset, data.Length, fua), resync);
        writer.Write(data);
        Enqueue(new PendingFrame(sequence, resync ? PendingKind.Resync : PendingKind.Change, offset, data.Length, waiter, WaitsForWrite(fua), Credit(holdsCredit, data.Length), null));
    }

    /// <summary>
    /// Queues an application write whose data is sent from the caller's buffer, not copied into the send
    /// queue. Only for a write that completes after <paramref name="waiter"/> has this peer's answer: the
    /// peer answers once it has read every byte, and a lost link answers only after its send loop ended,
    /// so the buffer outlives every use of it here. <paramref name="inFile"/>: the local copy's file
    /// already holds the data, so a plain link sends it from the page cache (<see cref="SendsFromFile"/>).
    /// </summary>
    public void SendWriteFromBuffer(ulong sequence, ulong epoch, long offset, ReadOnlyMemory<byte> data, bool fua, AckWaiter waiter, bool holdsCredit, bool inFile)
    {
        var writer = _pipe!.Writer;
        LinkFrameWriter.WriteWrite(writer, new WriteFrame(sequence, epoch, offset, data.Length, fua));
        lock (_lent)
        {
            // The data goes right after the header: at that position of the send queue's bytes.
            _lent.Enqueue(new Lent(_pipeBytes + writer.UnflushedBytes, data, inFile ? offset : -1));
        }

        Enqueue(new PendingFrame(sequence, PendingKind.Change, offset, data.Length, waiter, WaitsForWrite(fua), Credit(holdsCredit, data.Length), null));
    }

    public void SendZero(ulong sequence, ulong epoch, long offset, long length, bool fua, bool mayTrim, AckWaiter? waiter, bool holdsCredit, bool resync = false)
    {
        LinkFrameWriter.WriteZero(_pipe!.Writer, new ZeroFrame(sequence, epoch, offset, length, fua, mayTrim));
        Enqueue(new PendingFrame(sequence, resync ? PendingKind.Resync : PendingKind.Change, offset, length, waiter, WaitsForWrite(fua), Credit(holdsCredit, 0), null));
    }

    public void SendFlush(ulong sequence, ulong epoch, AckWaiter? waiter, bool holdsCredit)
    {
        _lastFlushSent = _owner.Time.GetTimestamp();
        LinkFrameWriter.WriteFlush(_pipe!.Writer, new FlushFrame(sequence, epoch));
        Enqueue(new PendingFrame(sequence, PendingKind.Flush, 0, 0, waiter, WaitForWrite: true, Credit(holdsCredit, 0), null));
    }

    /// <summary>
    /// Checksums the primary's range as it is now and asks the peer for its checksums at the same point
    /// in the stream. Null when the link is not replicating.
    /// </summary>
    internal ValueTask<ChecksumCompare?> SendChecksumRequestAsync(long offset, int length, byte[] buffer, CancellationToken ct) =>
        _owner.ReadSettledAsync(offset, length, () =>
        {
            if (!_replicating)
            {
                return null;
            }

            var compare = new ChecksumCompare(offset, length);
            _owner.Volume.Read(offset, buffer.AsSpan(0, length));
            BlockChecksums.Compute(buffer.AsSpan(0, length), compare.Local);
            var sequence = _owner.NextSequence();
            LinkFrameWriter.WriteChecksumRequest(_pipe!.Writer, new ChecksumRequestFrame(sequence, _owner.Epoch, offset, length));
            Enqueue(new PendingFrame(sequence, PendingKind.Checksums, offset, length, null, WaitForWrite: true, Credit: NoCredit, compare));
            return compare;
        }, ct);

    public void SendPing(ulong nonce)
    {
        LinkFrameWriter.WritePing(_pipe!.Writer, nonce, pong: false);
        Publish();
    }

    private void SendSync(ulong sequence, ulong epoch, GenerationIds ids, bool full, bool end, AckWaiter? waiter)
    {
        LinkFrameWriter.WriteSync(_pipe!.Writer, new SyncFrame(sequence, epoch, ids, full), end);
        Enqueue(new PendingFrame(sequence, end ? PendingKind.SyncEnd : PendingKind.Sync, 0, 0, waiter, WaitForWrite: true, Credit: NoCredit, null));
    }

    /// <summary>What a frame holds of the send window: its data's size, or <see cref="NoCredit"/>.</summary>
    private static long Credit(bool holdsCredit, long size) => holdsCredit ? size : NoCredit;

    // Protocol B acknowledges on receipt, except what must be durable (FUA and flushes).
    private bool WaitsForWrite(bool fua) => fua || _owner.Settings.Protocol != ReplicationProtocol.B;

    private void Enqueue(in PendingFrame frame)
    {
        lock (_pendingLock)
        {
            _pending.Enqueue(frame);
        }

        Publish();
    }

    // The pipe never pauses its writer (flow control is the credit window), so the flush completes at once.
    private void Publish()
    {
        _pipeBytes += _pipe!.Writer.UnflushedBytes;
        var flush = _pipe.Writer.FlushAsync(CancellationToken.None);
        if (!flush.IsCompleted)
        {
            throw new InvalidOperationException("the link's send pipe paused its writer");
        }

        flush.GetAwaiter().GetResult();
    }

    /// <summary>Called under the ordering lock when a change is not sent to this peer: it must be outdated first.</summary>
    public void EnsureOutdating()
    {
        if (!_outdated && _outdating is null)
        {
            StartOutdating();
            _owner.StopOtherPrimary(Peer.Host);
        }
    }

    // --- The connection loop -------------------------------------------------------------------------

    public async Task RunAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            var wait = RetryDelay;
            try
            {
                if (_owner.Settings.Disconnected)
                {
                    SetConnection(ConnectionState.StandAlone, "disconnected by an operator");
                    wait = Timeout.InfiniteTimeSpan;
                }
                else if (!await ConnectOnceAsync(ct).ConfigureAwait(false))
                {
                    wait = Timeout.InfiniteTimeSpan; // refused for a reason only an operator can change
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or OperationCanceledException or ObjectDisposedException or InvalidOperationException)
            {
                if (_losses.Passes(e.Message, _owner.Time.GetUtcNow()))
                {
                    LogLinkLost(_logger, _owner.Name, Peer.Host, e.Message);
                }

                if (_connection != ConnectionState.StandAlone)
                {
                    SetConnection(ConnectionState.Connecting, e.Message);
                }
            }

            Detach();
            try
            {
                await _wake.WaitAsync(wait, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        Detach();
    }

    /// <summary>One connection, from dial to loss. False when the peer was refused and only an operator can change that.</summary>
    private async Task<bool> ConnectOnceAsync(CancellationToken ct)
    {
        SetConnection(ConnectionState.Connecting, _reason);
        await using var stream = await _owner.Connect(Peer, ct).ConfigureAwait(false);
        var input = PipeReader.Create(stream, LinkPipes.Reader);
        try
        {
            using var handshakeTimeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            handshakeTimeout.CancelAfter(HandshakeTimeout);
            var local = _owner.LocalView();
            var hello = await HandshakeAsync(stream, input, local, handshakeTimeout.Token).ConfigureAwait(false);
            if (hello is not { } peerHello)
            {
                return false;
            }

            _peerDisk = peerHello.Disk;
            var peer = CopyView.From(peerHello);
            lock (_pendingLock)
            {
                _lastPeerView = peer;
            }
            var decision = Decide(local, peer, out var refusal);
            _decision = decision is null ? null : $"{decision.Rule}: {decision.Reason}";
            if (decision is null || decision.Outcome is not (SyncOutcome.NoSync or SyncOutcome.BitmapSyncLocalIsSource or SyncOutcome.FullSyncLocalIsSource))
            {
                var (code, reason) = decision switch
                {
                    { Outcome: SyncOutcome.BitmapSyncPeerIsSource or SyncOutcome.FullSyncPeerIsSource } =>
                        (LinkErrorCode.PeerIsNewer, $"the peer's copy holds newer data ({decision.Reason}); demote this copy and promote the peer's"),
                    { Outcome: SyncOutcome.SplitBrain or SyncOutcome.Unrelated } =>
                        (LinkErrorCode.CannotSync, $"split brain: {decision.Reason}; nothing is synced until an operator discards one copy (ferry volume resolve {_owner.Name} --discard HOST, on the host whose copy is kept)"),
                    _ => (LinkErrorCode.CannotSync, refusal ?? decision!.Reason),
                };
                await SendErrorAsync(stream, code, reason, ct).ConfigureAwait(false);
                SetConnection(ConnectionState.StandAlone, reason);
                LogStandAlone(_logger, _owner.Name, Peer.Host, reason);
                return false;
            }

            if (decision.Outcome == SyncOutcome.BitmapSyncLocalIsSource)
            {
                await ReceivePeerBitmapAsync(stream, input, handshakeTimeout.Token).ConfigureAwait(false);
            }

            _discardPeer = false;
            await RunConnectedAsync(stream, input, decision, peerHello, ct).ConfigureAwait(false);
            return true;
        }
        finally
        {
            await input.CompleteAsync().ConfigureAwait(false);
        }
    }

    private SyncDecision? Decide(CopyView local, CopyView peer, out string? refusal)
    {
        refusal = null;
        if (local.Ids.Current == peer.Ids.Current && _owner.InStepWithPrimaryOn(Peer.Host))
        {
            // A second primary linking back to the primary it follows in step: marks that primary keeps are
            // for other copies, not this one, and neither copy may be a resync target while primary.
            return new SyncDecision(SyncOutcome.NoSync, SyncRule.SameGeneration, local.Ids.Current, "a second primary joins the primary it is in step with");
        }

        if (!_discardPeer)
        {
            return SyncDecision.Decide(local, peer);
        }

        if (SplitBrainResolution.Discard(local, peer, CopySide.Peer).TryGetValue(out var discard, out var error))
        {
            LogDiscarding(_logger, _owner.Name, Peer.Host, discard.Sync.Reason);
            return discard.Sync;
        }

        _discardPeer = false;
        refusal = error.Message;
        return null;
    }

    private async Task<HelloFrame?> HandshakeAsync(Stream stream, PipeReader input, CopyView local, CancellationToken ct)
    {
        var s = _owner.Volume.Metadata.Current;
        var buffer = new ArrayBufferWriter<byte>(LinkWire.HeaderSize + LinkWire.HelloSize);
        LinkFrameWriter.WriteHello(buffer, new HelloFrame(
            s.VolumeId, s.Size, local.Ids, s.HighestEpoch, local.DirtyBlocks, local.Disk, CopyRole.Primary, _owner.Settings.Protocol, local.CrashedPrimary, _owner.Host));
        await stream.WriteAsync(buffer.WrittenMemory, ct).ConfigureAwait(false);
        await stream.FlushAsync(ct).ConfigureAwait(false);

        var frame = await LinkReader.ReadFrameAsync(input, ct).ConfigureAwait(false);
        switch (frame)
        {
            case { Frame.Header.Type: LinkFrameType.Hello }:
                var hello = frame.Value.Frame.Value.Hello;
                if (hello.VolumeId != s.VolumeId || hello.Size != s.Size)
                {
                    var reason = $"the peer's copy is of another volume or size ({hello.VolumeId}, {hello.Size} bytes)";
                    await SendErrorAsync(stream, LinkErrorCode.WrongVolume, reason, ct).ConfigureAwait(false);
                    SetConnection(ConnectionState.StandAlone, reason);
                    return null;
                }

                return hello;

            case { Frame.Header.Type: LinkFrameType.Error }:
                var error = frame.Value.Frame.Value;
                var why = $"the peer refused the link: {error.ErrorMessage}";
                SetConnection(ConnectionState.StandAlone, why);
                LogStandAlone(_logger, _owner.Name, Peer.Host, why);
                if (error.ErrorCode == (uint)LinkErrorCode.StaleEpoch)
                {
                    _owner.Fence(why);
                }

                // A copy that is primary too, or refuses for a reason that may pass, is asked again later: a host
                // that has no copy yet may be about to make it (a cluster's hosts create their copies each on its own).
                return error.ErrorCode is (uint)LinkErrorCode.RoleConflict or (uint)LinkErrorCode.ShuttingDown or (uint)LinkErrorCode.WrongVolume
                    ? throw new IOException(why)
                    : null;

            default:
                throw new IOException(frame is null ? "the peer closed the link during the handshake" : $"the peer sent {frame.Value.Error ?? "an unexpected frame"} instead of hello");
        }
    }

    private async Task ReceivePeerBitmapAsync(Stream stream, PipeReader input, CancellationToken ct)
    {
        var buffer = new ArrayBufferWriter<byte>(LinkWire.HeaderSize);
        LinkFrameWriter.WriteBitmapRequest(buffer);
        await stream.WriteAsync(buffer.WrittenMemory, ct).ConfigureAwait(false);
        await stream.FlushAsync(ct).ConfigureAwait(false); // a TLS link gathers what it writes until flushed
        while (true)
        {
            var frame = await LinkReader.ReadFrameAsync(input, ct).ConfigureAwait(false);
            if (frame is not { Frame: { Header.Type: LinkFrameType.Bitmap } f })
            {
                throw new IOException("the peer did not send its bitmap");
            }

            var data = new byte[f.Bitmap.Length];
            if (!await LinkReader.ReadDataAsync(input, data, ct).ConfigureAwait(false))
            {
                throw new IOException("the peer left while sending its bitmap");
            }

            var words = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ulong>(data);
            lock (_owner.OrderLock)
            {
                _owner.Bitmap.Merge(f.Bitmap.FirstWord, words);
                _owner.LacksOf(Peer.Host)?.Marks.Merge(f.Bitmap.FirstWord, words);
            }

            if (f.Bitmap.Last)
            {
                return;
            }
        }
    }

    private async Task RunConnectedAsync(Stream stream, PipeReader input, SyncDecision decision, HelloFrame peerHello, CancellationToken ct)
    {
        using var linkCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var link = linkCts.Token;
        var pipe = new Pipe(LinkPipes.SendQueue);
        var lacks = LacksToResyncFrom(decision, CopyView.From(peerHello));
        using var resync = decision.Source == CopySide.Local ? _owner.BeginResync(decision.IsFullSync && lacks is null) : null;

        lock (_owner.OrderLock)
        {
            _pipe = pipe;
            _pipeBytes = 0;
            _replicating = true;
            _sendsFromFile = stream is NetworkStream && OperatingSystem.IsLinux();

            // A repair asked for on the last connection may have been taken from the queue and lost with it:
            // asked again, it runs on this one (after its resync, if any).
            if (Interlocked.Exchange(ref _repairRequested, 0) != 0)
            {
                RequestRepair();
            }

            if (resync is not null)
            {
                var ids = _owner.Volume.Metadata.Current.Generations;
                resync.TakeSnapshot(lacks?.Marks ?? _owner.Bitmap);
                SendSync(_owner.NextSequence(), _owner.Epoch, ids, resync.Full, end: false, waiter: null);
                if (lacks is not null)
                {
                    lacks.Generation = ids.Bitmap;
                    _decision += $"; only the blocks it missed are copied ({lacks.Marks.CountDirty()}, as this primary marked them since it left)";
                }
            }
            else
            {
                _peerCurrent = peerHello.Generations.Current;
            }
        }

        lock (_pendingLock)
        {
            _resync = resync;
            _inStep = resync is null;
            _connection = resync is null ? ConnectionState.Connected : ConnectionState.SyncSource;
            _reason = null;
        }

        if (resync is null)
        {
            _owner.SharedGeneration(peerHello.Generations.Current);
            await FinishedWithPeerAsync(link).ConfigureAwait(false);
        }

        LogConnected(_logger, _owner.Name, Peer.Host, decision.Rule.ToString(), decision.Reason);
        var lastHeard = new LastHeard(_owner.Time);
        var tasks = new List<Task>
        {
            SendLoopAsync(stream, pipe.Reader, link),
            ReceiveLoopAsync(input, lastHeard, link),
            PingLoopAsync(lastHeard, SocketUnder(stream), link),
        };
        tasks.Add(WorkLoopAsync(resync, link));

        var first = await Task.WhenAny(tasks).ConfigureAwait(false);
        await linkCts.CancelAsync().ConfigureAwait(false);
        try
        {
            await Task.WhenAll(tasks).ConfigureAwait(false);
        }
        catch (Exception) when (first.IsFaulted || first.IsCanceled || ct.IsCancellationRequested)
        {
            // The first failure is the one that matters; the others are its echoes.
        }

        await first.ConfigureAwait(false); // rethrows why the link ended
        throw new IOException("the link ended");
    }

    /// <summary>
    /// The peer's own marks, when the rules found it missed this copy's writes and it comes back holding the
    /// generation they are relative to: its data is then that generation's, less this copy's writes it did
    /// not get, all marked. Otherwise (another generation, a split brain, a crashed primary, marks of its own
    /// the rules did not ask for) they are dropped and the shared bitmap, or a full sync, is used as the rules say.
    /// </summary>
    private PeerLacks? LacksToResyncFrom(SyncDecision decision, CopyView peer)
    {
        lock (_owner.OrderLock)
        {
            var lacks = _owner.LacksOf(Peer.Host);
            var usable = lacks is not null && decision is { Source: CopySide.Local, Rule: SyncRule.MissedWrites or SyncRule.OlderGeneration or SyncRule.ResyncNotFinished }
                && peer.Ids.Current != 0 && peer.Ids.Current == lacks.Generation
                && !peer.CrashedPrimary && (peer.DirtyBlocks == 0 || decision.Outcome == SyncOutcome.BitmapSyncLocalIsSource);
            if (!usable)
            {
                _owner.ForgetLacks(Peer.Host);
                return null;
            }

            return lacks;
        }
    }

    private async Task FinishedWithPeerAsync(CancellationToken ct)
    {
        _outdated = false;
        _losses.Reset();
        await _owner.Authority.ClearOutdatedAsync(_owner.VolumeId, Peer.Host, ct).ConfigureAwait(false);
    }

    /// <summary>Sends the send queue's bytes, and each write's data lent from its buffer (or the file) where it belongs among them.</summary>
    private async Task SendLoopAsync(Stream stream, PipeReader frames, CancellationToken ct)
    {
        var socket = (stream as NetworkStream)?.Socket;
        long sent = 0;
        while (true)
        {
            var result = await frames.ReadAsync(ct).ConfigureAwait(false);
            var buffer = result.Buffer;
            while (true)
            {
                Lent? lent;
                lock (_lent)
                {
                    lent = _lent.Count > 0 ? _lent.Peek() : null;
                }

                var upTo = lent is { } next ? Math.Min(buffer.Length, next.At - sent) : buffer.Length;
                foreach (var segment in buffer.Slice(0, upTo))
                {
                    await stream.WriteAsync(segment, ct).ConfigureAwait(false);
                }

                sent += upTo;
                buffer = buffer.Slice(upTo);
                if (lent is not { } data || data.At != sent)
                {
                    break;
                }

                if (socket is not null && data.FileOffset >= 0)
                {
                    await SendFromFileAsync(stream, socket, data, ct).ConfigureAwait(false);
                }
                else
                {
                    await stream.WriteAsync(data.Data, ct).ConfigureAwait(false);
                }

                lock (_lent)
                {
                    _lent.Dequeue();
                }
            }

            await stream.FlushAsync(ct).ConfigureAwait(false);
            frames.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                return;
            }
        }
    }

    /// <summary>
    /// Sends a write's data from the local file with sendfile(2) as far as the socket's buffer takes it;
    /// when the buffer is full, one page goes from the caller's buffer (which holds the same bytes) through
    /// the stream, whose write waits until the peer has read enough, and sendfile goes on with the rest.
    /// A later write to the same range may already be in the file: then this frame carries some of its
    /// bytes, which its own frame brings again right after; the two were in flight together, so neither
    /// result is wrong (and a lost link marks both ranges anyway).
    /// </summary>
    private async ValueTask SendFromFileAsync(Stream stream, Socket socket, Lent data, CancellationToken ct)
    {
        var done = 0;
        while (done < data.Data.Length)
        {
            var count = data.Data.Length - done;
            var moved = _owner.Volume.SendTo(socket.SafeHandle, data.FileOffset + done, count);
            if (moved > 0)
            {
                done += (int)moved;
                continue;
            }

            // A full buffer sends a page the ordinary way; anything else (a file that takes no sendfile,
            // or one shorter than the write, 0) sends all the rest that way.
            var piece = moved == -LinuxFile.EAgain ? Math.Min(PageSize, count) : count;
            await stream.WriteAsync(data.Data.Slice(done, piece), ct).ConfigureAwait(false);
            done += piece;
        }
    }

    private async Task ReceiveLoopAsync(PipeReader input, LastHeard lastHeard, CancellationToken ct)
    {
        while (true)
        {
            var next = await LinkReader.ReadFrameAsync(input, ct).ConfigureAwait(false);
            if (next is not { Frame: { } frame })
            {
                throw new IOException(next?.Error ?? "the peer closed the link");
            }

            lastHeard.Now();
            switch (frame.Header.Type)
            {
                case LinkFrameType.Ack:
                    Acknowledge(frame.Ack);
                    break;
                case LinkFrameType.Checksums:
                    await ReceiveChecksumsAsync(input, frame.Checksums, ct).ConfigureAwait(false);
                    break;
                case LinkFrameType.Pong or LinkFrameType.Ping:
                    break;
                case LinkFrameType.Error:
                    if (frame.ErrorCode == (uint)LinkErrorCode.StaleEpoch)
                    {
                        _owner.Fence($"the peer refused this primary: {frame.ErrorMessage}");
                    }

                    throw new IOException($"the peer ended the link: {frame.ErrorMessage}");
                default:
                    throw new IOException($"the peer sent an unexpected {frame.Header.Type} frame");
            }
        }
    }

    /// <summary>The TCP socket a link's stream runs on, plain or under TLS; null for other streams (tests' pipes).</summary>
    private static Socket? SocketUnder(Stream stream) => stream switch
    {
        NetworkStream plain => plain.Socket,
        ISocketLink tls => tls.Socket,
        _ => null,
    };

    /// <summary>
    /// Pings the peer and judges it gone when it gave no sign of life for <see cref="DeadAfter"/>. On a TCP
    /// link (plain or TLS) the kernel also tells how many bytes the peer's TCP acknowledged: when that grew
    /// by more than pings since the last look, the peer is taking data (its answers are queued behind it
    /// on a slow link).
    /// </summary>
    private async Task PingLoopAsync(LastHeard lastHeard, Socket? socket, CancellationToken ct)
    {
        ulong nonce = 0;
        var acknowledged = long.MaxValue;
        while (true)
        {
            await Task.Delay(PingInterval, _owner.Time, ct).ConfigureAwait(false);
            if (socket is not null && LinuxSocket.BytesAcknowledged(socket) is var now and >= 0)
            {
                if (now - acknowledged >= AcknowledgedAtLeast)
                {
                    lastHeard.Now();
                }

                acknowledged = now;
            }

            if (lastHeard.Silence > DeadAfter)
            {
                throw new IOException($"the peer sent nothing for {DeadAfter.TotalSeconds:0.#} s");
            }

            lock (_owner.OrderLock)
            {
                SendPing(++nonce);
            }
        }
    }

    private static string Describe(PendingKind kind) => kind switch
    {
        PendingKind.Change => "change",
        PendingKind.Resync => "resync block",
        PendingKind.Flush => "flush",
        _ => "request",
    };

    private void Acknowledge(AckFrame ack)
    {
        PendingFrame head;
        lock (_pendingLock)
        {
            if (!_pending.TryPeek(out head) || head.Sequence != ack.Sequence)
            {
                throw new IOException($"the peer acknowledged {ack.Sequence}, but {(_pending.Count == 0 ? "nothing" : head.Sequence.ToString(System.Globalization.CultureInfo.InvariantCulture))} was next");
            }

            if (ack.Status != AckStatus.Ok)
            {
                throw new IOException($"the peer could not apply a {Describe(head.Kind)}: {AckStatusText.Of(ack.Status)}");
            }

            if (head.Kind == PendingKind.Checksums)
            {
                throw new IOException($"the peer acknowledged checksum request {ack.Sequence} without checksums");
            }

            if (ack.Kind == AckKind.Received)
            {
                // Protocol B: the peer has it in memory. It stays queued until written, for the bitmap.
                if (!head.WaitForWrite)
                {
                    head.Waiter?.Signal(AckStatus.Ok);
                    _receivedThrough = head.Sequence;
                }

                return;
            }

            _pending.Dequeue();
            if (head.Kind is PendingKind.Change or PendingKind.Resync)
            {
                _unflushed.Written(head.Offset, head.Length);
            }
            else if (head.Kind is PendingKind.Flush or PendingKind.SyncEnd)
            {
                _unflushed.Flushed();
            }
        }

        if (head.Credit != NoCredit)
        {
            _window.Return(head.Credit);
        }

        if (head.Kind == PendingKind.Resync)
        {
            _resync?.Acknowledged(head.Length);
            _owner.ResyncBlockDone(this, head.Offset, head.Length);
        }

        // Last: the write's completion may run right here.
        if (!IsSignalled(head))
        {
            head.Waiter?.Signal(AckStatus.Ok, inline: true);
        }
    }

    private async Task ReceiveChecksumsAsync(PipeReader input, ChecksumsFrame checksums, CancellationToken ct)
    {
        var bytes = new byte[checksums.Length];
        if (!await LinkReader.ReadDataAsync(input, bytes, ct).ConfigureAwait(false))
        {
            throw new IOException("the peer left while sending checksums");
        }


        PendingFrame head;
        lock (_pendingLock)
        {
            if (!_pending.TryPeek(out head) || head.Sequence != checksums.Sequence || head.Compare is not { } compare || compare.Blocks * sizeof(ulong) != bytes.Length)
            {
                throw new IOException($"the peer sent checksums for {checksums.Sequence}, which does not match the next request");
            }

            _pending.Dequeue();
        }

        head.Compare.Answer(bytes);
    }

    private bool IsSignalled(in PendingFrame frame) => !frame.WaitForWrite && frame.Sequence == _receivedThrough;

    /// <summary>
    /// The connection's background work: the resync it started with, then each verify asked for, followed
    /// by a resync of the blocks it found different. Ends only with the connection.
    /// </summary>
    private async Task WorkLoopAsync(ResyncRun? resync, CancellationToken ct)
    {
        if (resync is not null)
        {
            await ResyncAsync(resync, ct).ConfigureAwait(false);
        }

        while (true)
        {
            var verify = await _workRequests.Reader.ReadAsync(ct).ConfigureAwait(false);
            if (verify is null)
            {
                // Nothing marked: the request is done, unless a failure marked blocks just as it was let go.
                if (!_owner.HasMarks())
                {
                    Volatile.Write(ref _repairRequested, 0);
                    if (!_owner.HasMarks())
                    {
                        continue;
                    }
                }

                using var repair = BeginRepair();
                await ResyncAsync(repair, ct).ConfigureAwait(false);
                continue;
            }

            var different = await verify.RunAsync(this, ct).ConfigureAwait(false);
            LogVerified(_logger, _owner.Name, Peer.Host, different);
            if (different > 0)
            {
                try
                {
                    using var repair = BeginRepair();
                    await ResyncAsync(repair, ct).ConfigureAwait(false);
                }
                catch (Exception e) when (e is IOException or OperationCanceledException)
                {
                    verify.Finish("the link was lost during the resync of the differing blocks; the next connection resyncs them");
                    throw;
                }
            }

            verify.Finish();
        }
    }

    private async Task ResyncAsync(ResyncRun resync, CancellationToken ct)
    {
        await resync.RunAsync(this, ct).ConfigureAwait(false);
        lock (_pendingLock)
        {
            _connection = ConnectionState.Connected;
            _inStep = true;
            _peerDisk = DiskState.UpToDate;
        }

        await FinishedWithPeerAsync(ct).ConfigureAwait(false);
    }

    /// <summary>A resync within the connection, of the blocks a verify marked: the peer is a sync target until it ends.</summary>
    private ResyncRun BeginRepair()
    {
        var resync = _owner.BeginResync(full: false);
        lock (_owner.OrderLock)
        {
            if (!_replicating)
            {
                resync.Dispose();
                throw new IOException("the link was lost before the repair began");
            }

            // Marks made from here on are not in the snapshot: a failure that makes them asks for a repair of its own.
            Volatile.Write(ref _repairRequested, 0);
            resync.TakeSnapshot(_owner.Bitmap);
            SendSync(_owner.NextSequence(), _owner.Epoch, _owner.Volume.Metadata.Current.Generations, full: false, end: false, waiter: null);
        }

        lock (_pendingLock)
        {
            _resync = resync;
            _inStep = false;
            _connection = ConnectionState.SyncSource;
        }

        return resync;
    }

    /// <summary>
    /// Sends one resync block read from the primary's copy as it is at that point in the stream; a range
    /// that is a hole there goes as a Zero frame that may punch a hole, so no data crosses and the target
    /// stays sparse. False when the link is not replicating.
    /// </summary>
    internal ValueTask<bool> SendResyncBlockAsync(long offset, int length, byte[] buffer, CancellationToken ct) =>
        _owner.ReadSettledAsync(offset, length, () =>
        {
            if (!_replicating)
            {
                return false;
            }

            if (_owner.Volume.IsHole(offset, length))
            {
                SendZero(_owner.NextSequence(), _owner.Epoch, offset, length, fua: false, mayTrim: true, waiter: null, holdsCredit: false, resync: true);
                return true;
            }

            _owner.Volume.Read(offset, buffer.AsSpan(0, length));
            SendWrite(_owner.NextSequence(), _owner.Epoch, offset, buffer.AsSpan(0, length), fua: false, resync: true, waiter: null, holdsCredit: false);
            Interlocked.Add(ref _resyncBytesSent, length);
            if (_owner.Time.GetElapsedTime(_lastFlushSent) >= ResyncFlushInterval)
            {
                SendFlush(_owner.NextSequence(), _owner.Epoch, waiter: null, holdsCredit: false);
            }

            return true;
        }, ct);

    /// <summary>
    /// Under the ordering lock, when the primary starts a new generation: a peer connected and in step
    /// (not resyncing, whose end will carry the ids anyway) is told the ids it holds from here.
    /// </summary>
    internal void SendGenerationIfInStep(GenerationIds ids)
    {
        lock (_pendingLock)
        {
            if (!_replicating || _connection != ConnectionState.Connected)
            {
                return;
            }
        }

        var sequence = _owner.NextSequence();
        _peerCurrent = ids.Current;
        LinkFrameWriter.WriteGeneration(_pipe!.Writer, new SyncFrame(sequence, _owner.Epoch, ids, Full: false));
        Enqueue(new PendingFrame(sequence, PendingKind.Sync, 0, 0, null, WaitForWrite: true, Credit: NoCredit, null));
    }

    internal void SendSyncEnd(GenerationIds ids, AckWaiter waiter)
    {
        lock (_owner.OrderLock)
        {
            if (!_replicating)
            {
                throw new IOException("the link was lost before the resync ended");
            }

            _peerCurrent = ids.Current;
            SendSync(_owner.NextSequence(), _owner.Epoch, ids, full: false, end: true, waiter);
        }
    }

    // --- Losing the peer -----------------------------------------------------------------------------

    /// <summary>
    /// Stops sending to the peer: what it had not acknowledged is marked in the bitmap, and the writes
    /// waiting for it complete only once the peer is marked Outdated (invariant 3).
    /// </summary>
    private void Detach()
    {
        PendingFrame[] lost;
        lock (_owner.OrderLock)
        {
            if (_pipe is null)
            {
                return;
            }

            _replicating = false;
            _sendsFromFile = false;
            _pipe.Writer.Complete();
            _pipe = null;
            lock (_lent)
            {
                _lent.Clear();
            }

            PeerLacks? lacks;
            bool unflushed;
            lock (_pendingLock)
            {
                // A peer lost while in step holds the generation it was last sent; from here its misses are marked for it.
                // One lost in a resync from its own marks keeps them (what it got is cleared); after any other resync it has none.
                lacks = _inStep ? _owner.StartLacks(Peer.Host, _peerCurrent) : _owner.LacksOf(Peer.Host);
                _inStep = false;
                lost = [.. _pending];
                _pending.Clear();
                unflushed = _unflushed.MarkIn(_owner.Bitmap, lacks?.Marks);
                _resync?.Interrupted();
                _resync = null;
                if (_connection is ConnectionState.Connected or ConnectionState.SyncSource)
                {
                    _connection = ConnectionState.Connecting;
                }
            }

            // What the peer may lack: what it had not acknowledged, and what it had not made durable (lost if
            // its host lost power).
            var mayLack = unflushed || lost.Any(f => f.Kind is PendingKind.Change or PendingKind.Resync);
            foreach (var frame in lost)
            {
                if (frame.Kind is PendingKind.Change or PendingKind.Resync)
                {
                    _owner.Bitmap.Mark(frame.Offset, frame.Length);
                    lacks?.Marks.Mark(frame.Offset, frame.Length);
                }

                frame.Compare?.Fail("the link was lost before the peer answered");
            }

            // Writes the peer may lack complete only once it is outdated, and so does a flush: the guest takes
            // it to mean its writes are durable, which they may not be on the peer. Without any, a later write asks.
            if (mayLack || lost.Any(f => f.Kind == PendingKind.Flush))
            {
                EnsureOutdating();
            }
        }

        var outdating = Outdating;
        _ = outdating.ContinueWith(
            granted =>
            {
                var status = granted.Result && !_owner.IsFenced ? AckStatus.Ok : AckStatus.IoError;
                foreach (var frame in lost)
                {
                    if (!IsSignalled(frame))
                    {
                        frame.Waiter?.Signal(status);
                    }

                    if (frame.Credit != NoCredit)
                    {
                        _window.Return(frame.Credit);
                    }
                }
            },
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
    }

    private void StartOutdating()
    {
        var done = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        _outdating = done;
        _ = Task.Run(async () =>
        {
            var request = new OutdateRequest(_owner.VolumeId, _owner.Name, Peer.Host, _owner.Host, _owner.Epoch);
            var granted = false;
            while (true)
            {
                OutdateResult result;
                try
                {
                    request = request with { Epoch = _owner.Epoch }; // a primary may take a newer epoch while it asks
                    result = await _owner.Authority.OutdateAsync(request, _owner.Lifetime).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break; // closing: the writes waiting for it fail
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Text.Json.JsonException)
                {
                    result = new OutdateResult(OutdateOutcome.Unavailable, e.Message);
                }

                if (result.Outcome == OutdateOutcome.Granted)
                {
                    lock (_owner.OrderLock)
                    {
                        _outdated = true;
                        _outdating = null;

                        // Before any write or flush the peer may lack completes: a new generation, so that the next
                        // handshake resyncs what it lacks even if no write follows. Not at the loss itself: a primary
                        // cut off from the authority too never completes them, and must come back at the generation
                        // its peers hold, to be resynced as a crashed primary rather than meet them as a split brain.
                        if (_owner.Settings.Role == CopyRole.Primary)
                        {
                            _owner.StartGenerationWithout(Peer.Host);
                        }
                    }

                    LogOutdated(_logger, _owner.Name, Peer.Host, _owner.Epoch);
                    granted = true;
                    break;
                }

                if (result.Outcome == OutdateOutcome.Refused)
                {
                    _owner.Fence(result.Reason);
                    break;
                }

                LogOutdateWaiting(_logger, _owner.Name, Peer.Host, result.Reason);
                try
                {
                    await Task.Delay(RetryDelay, _owner.Time, _owner.Lifetime).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }

            done.TrySetResult(granted);
        });
    }

    private void SetConnection(ConnectionState state, string? reason)
    {
        lock (_pendingLock)
        {
            _connection = state;
            _reason = reason;
        }
    }

    private static async Task SendErrorAsync(Stream stream, LinkErrorCode code, string reason, CancellationToken ct)
    {
        var buffer = new ArrayBufferWriter<byte>();
        LinkFrameWriter.WriteError(buffer, (uint)code, reason);
        await stream.WriteAsync(buffer.WrittenMemory, ct).ConfigureAwait(false);
        await stream.FlushAsync(ct).ConfigureAwait(false);
    }

    public void Dispose()
    {
        _wake.Dispose();
    }

    private enum PendingKind
    {
        Change,
        Flush,
        Resync,
        Sync,

        /// <summary>A resync's end: the target makes its data durable before it answers, as for a flush.</summary>
        SyncEnd,
        Checksums,
    }

    private readonly record struct PendingFrame(
        ulong Sequence, PendingKind Kind, long Offset, long Length, AckWaiter? Waiter, bool WaitForWrite, long Credit, ChecksumCompare? Compare);

    /// <summary>A write's data lent to the send loop: it goes at position <see cref="At"/> of the send queue's bytes; <see cref="FileOffset"/> is where the local file holds it, or -1.</summary>
    private readonly record struct Lent(long At, ReadOnlyMemory<byte> Data, long FileOffset);

    /// <summary>
    /// When the peer last gave a sign of life: a frame from it, or data its TCP acknowledged (see
    /// <see cref="PingLoopAsync"/>). A large write, or a long queue of them, over a slow link takes longer
    /// than <see cref="DeadAfter"/> to arrive, with the peer's answers behind it. Completed sends are no
    /// sign: the kernel takes them into the socket's buffer from a cut-off peer too. A peer that stopped
    /// reading acknowledges nothing once its buffer is full (and its pings are too few bytes to count).
    /// </summary>
    private sealed class LastHeard(TimeProvider time)
    {
        private long _at = time.GetTimestamp();

        public TimeSpan Silence => time.GetElapsedTime(Volatile.Read(ref _at));

        public void Now() => Volatile.Write(ref _at, time.GetTimestamp());
    }

    [LoggerMessage(2200, LogLevel.Information, "volume {VolumeId}: replicating to {PeerHost} ({Rule}: {Reason})")]
    private static partial void LogConnected(ILogger logger, string volumeId, string peerHost, string rule, string reason);

    [LoggerMessage(2201, LogLevel.Warning, "volume {VolumeId}: link to {PeerHost} lost: {Reason}")]
    private static partial void LogLinkLost(ILogger logger, string volumeId, string peerHost, string reason);

    [LoggerMessage(2202, LogLevel.Error, "volume {VolumeId}: stand-alone from {PeerHost}: {Reason}")]
    private static partial void LogStandAlone(ILogger logger, string volumeId, string peerHost, string reason);

    [LoggerMessage(2203, LogLevel.Warning, "volume {VolumeId}: {PeerHost}'s copy marked Outdated at epoch {Epoch}")]
    private static partial void LogOutdated(ILogger logger, string volumeId, string peerHost, ulong epoch);

    [LoggerMessage(2204, LogLevel.Warning, "volume {VolumeId}: I/O waits until {PeerHost}'s copy is marked Outdated: {Reason}")]
    private static partial void LogOutdateWaiting(ILogger logger, string volumeId, string peerHost, string reason);

    [LoggerMessage(2206, LogLevel.Information, "volume {VolumeId}: verify against {PeerHost} found {Blocks} differing 4 KiB blocks")]
    private static partial void LogVerified(ILogger logger, string volumeId, string peerHost, long blocks);

    [LoggerMessage(2205, LogLevel.Warning, "volume {VolumeId}: discarding {PeerHost}'s writes as an operator asked: {Reason}")]
    private static partial void LogDiscarding(ILogger logger, string volumeId, string peerHost, string reason);
}
