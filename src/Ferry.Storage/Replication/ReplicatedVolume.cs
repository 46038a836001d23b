using Ferry.Core;
using Ferry.Storage.Replication.Wire;
using Ferry.Storage.Volumes;
using Microsoft.Extensions.Logging;

namespace Ferry.Storage.Replication;

/// <summary>Where a replicated volume's links come from: this host's name, the authority, and how to reach a peer.</summary>
public sealed record ReplicationContext(
    string Host,
    IReplicationAuthority Authority,
    Func<PeerAddress, CancellationToken, Task<Stream>> Connect,
    TimeProvider Time,
    ILogger Logger);

/// <summary>
/// One copy of a volume with its replication: the block device NBD serves while this copy is primary,
/// and the target of a primary's link while it is secondary.
/// </summary>
/// <remarks>
/// Every change is applied locally and queued to each replicating peer under one ordering lock, so
/// the peers see changes in the order this copy applied them (and a resync block, read under the same
/// lock, can never overtake a newer write). A change not sent to a peer is marked in the dirty bitmap
/// and needs that peer outdated before it completes (DESIGN invariant 3); the activity log records the
/// extents being written so that after a crash only those are resynced.
/// </remarks>
public sealed partial class ReplicatedVolume : IBlockDevice, IAsyncDisposable
{
    private readonly ReplicationContext _context;
    private readonly ActivityLog _activityLog;
    private readonly Lock _order = new();
    private readonly InFlightRanges _inFlight = new();
    private readonly List<Task> _links = [];
    private PeerLink[] _peers = [];
    private readonly Dictionary<string, PeerLacks> _lacks = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _lifetime = new();
    private CancellationTokenSource _stopping = new();
    private ulong _sequence;
    private bool _crashedAtOpen;
    private volatile string? _fencedReason;
    private long _lastApplicationWrite;
    private readonly Lock _sessions = new();
    private ReplicaSession[] _incoming = [];
    private int _disposed;

    private ReplicatedVolume(Volume volume, ReplicationSettings settings, ReplicationContext context, DirtyBitmap bitmap, bool crashedAtOpen)
    {
        Volume = volume;
        Settings = settings;
        _context = context;
        Bitmap = bitmap;
        _crashedAtOpen = crashedAtOpen;
        _activityLog = new ActivityLog(volume.Metadata, bitmap, volume.Size, flushEveryCopy: FlushAsync);
    }

    /// <summary>
    /// Opens a copy. A copy that stopped while primary folds its activity-log extents into its bitmap:
    /// writes in flight then may be on one copy and not the other.
    /// </summary>
    public static ReplicatedVolume Open(Volume volume, ReplicationSettings settings, ReplicationContext context)
    {
        var bitmap = volume.Metadata.ReadBitmap();
        var crashed = volume.Metadata.Current.CrashedPrimary;
        if (crashed)
        {
            var extents = ActivityLog.Recover(volume.Metadata, bitmap);
            LogRecovered(context.Logger, volume.Name, extents);
        }

        var replicated = new ReplicatedVolume(volume, settings, context, bitmap, crashed);
        if (settings.Role == CopyRole.Primary)
        {
            replicated.StartPrimary();
        }

        return replicated;
    }

    public Volume Volume { get; }

    public ReplicationSettings Settings { get; private set; }

    public DirtyBitmap Bitmap { get; }

    public string Name => Volume.Name;

    public Guid VolumeId => Volume.Metadata.Current.VolumeId;

    public string Host => _context.Host;

    public ulong Epoch => Volume.Metadata.Current.HighestEpoch;

    public bool IsFenced => _fencedReason is not null;

    public long Size => Volume.Size;

    public bool IsReadOnly => false;

    /// <summary>Every connection's writes go through the same ordering lock and flush every copy.</summary>
    public bool FlushIsGlobal => Volume.FlushIsGlobal;

    internal TimeProvider Time => _context.Time;

    /// <summary>As a copy: failures to apply a primary's changes already logged (a full disk fails every retry alike).</summary>
    internal RepeatFilter FailedChanges { get; } = new(TimeSpan.FromMinutes(1));

    internal IReplicationAuthority Authority => _context.Authority;

    internal Lock OrderLock => _order;

    /// <summary>Cancelled when the copy is closed (agent shutdown, volume deleted); outdating a peer gives up then.</summary>
    internal CancellationToken Lifetime => _lifetime.Token;

    internal bool ApplicationIsWriting => Time.GetElapsedTime(Volatile.Read(ref _lastApplicationWrite)) < TimeSpan.FromMilliseconds(50);

    internal Task<Stream> Connect(PeerAddress peer, CancellationToken ct) => _context.Connect(peer, ct);

    internal ulong NextSequence() => ++_sequence;

    // --- Status ----------------------------------------------------------------------------------------

    public CopyState CopyState()
    {
        var s = Volume.Metadata.Current;
        var role = Settings.Role;
        var peers = _peers.Select(p => p.Status()).ToArray();
        var connection = role == CopyRole.Primary
            ? PrimaryConnection(peers)
            : FirstIncoming?.Connection ?? (Settings.Peers.Count == 0 ? ConnectionState.StandAlone : ConnectionState.Connecting);
        return new CopyState(s.Disk, role, connection)
        {
            Protocol = Settings.Protocol,
            Peers = peers,
            FencedReason = _fencedReason,
            DirtyBytes = Bitmap.CountDirty() * Bitmap.BlockSize,
            Incoming = FirstIncoming?.Status(),
            SecondIncoming = Volatile.Read(ref _incoming) is [_, var second] ? second.Status() : null,
        };
    }

    /// <summary>One word for all of a primary's links: a resync running wins, then whether any peer is still being reached.</summary>
    private static ConnectionState PrimaryConnection(PeerStatus[] peers)
    {
        if (peers.Length == 0)
        {
            return ConnectionState.StandAlone;
        }

        if (peers.Any(p => p.Connection == ConnectionState.SyncSource))
        {
            return ConnectionState.SyncSource;
        }

        if (peers.Any(p => p.Connection == ConnectionState.Connecting))
        {
            return ConnectionState.Connecting;
        }

        return peers.Any(p => p.Connection == ConnectionState.Connected) ? ConnectionState.Connected : ConnectionState.StandAlone;
    }

    // --- Roles -----------------------------------------------------------------------------------------

    /// <summary>
    /// Makes this copy primary with the given epoch, which the authority must grant (above every epoch
    /// seen). An Outdated copy is refused unless <paramref name="force"/>, and then the answer says what
    /// is at risk.
    /// </summary>
    public async Task<Result<string>> PromoteAsync(ulong epoch, bool force, CancellationToken ct)
    {
        if (Settings.Role == CopyRole.Primary)
        {
            return FerryError.WrongState($"the copy of '{Name}' on {Host} is already primary (epoch {Epoch})");
        }

        var s = Volume.Metadata.Current;
        if (epoch <= s.HighestEpoch)
        {
            return FerryError.Conflict($"epoch {epoch} is not above {s.HighestEpoch}, the highest this copy of '{Name}' has seen; promote with a higher epoch");
        }

        if (s.Disk == DiskState.Inconsistent)
        {
            return FerryError.WrongState($"the copy of '{Name}' on {Host} is Inconsistent (a resync to it did not finish) and cannot be primary");
        }

        var warning = "";
        if (await Authority.GetOutdatedAsync(s.VolumeId, Host, ct).ConfigureAwait(false) is { } mark)
        {
            if (!force)
            {
                return FerryError.WrongState(
                    $"the copy of '{Name}' on {Host} is Outdated: {mark.ByHost} went on without it at epoch {mark.Epoch} ({mark.At:u}); " +
                    "promote the up-to-date copy, or --force to accept losing what it wrote since");
            }

            warning = $"forced: writes acknowledged by {mark.ByHost} since epoch {mark.Epoch} ({mark.At:u}) are not in this copy and are at risk";
            LogForced(_context.Logger, Name, warning);
        }

        if (!(await Authority.RecordPromotionAsync(s.VolumeId, Host, epoch, ct).ConfigureAwait(false)).TryGetValue(out _, out var refused))
        {
            return refused;
        }

        await StopIncomingAsync().ConfigureAwait(false);

        // What it received as a secondary goes to disk first: as primary, a crash marks only the extents it writes itself.
        await Volume.FlushAsync(ct).ConfigureAwait(false);
        Volume.Metadata.Update(m => m with { HighestEpoch = epoch });
        Settings = Settings with { Role = CopyRole.Primary };
        StartPrimary();
        LogPromoted(_context.Logger, Name, epoch);
        return warning;
    }

    /// <summary>
    /// Moves this primary to a higher epoch the authority granted it, without a pause: its writes carry
    /// the new one from now on, and its peers refuse any lower. A live migration's target takes one once
    /// the handoff is over, so that nothing written at the shared epoch is taken any more.
    /// </summary>
    public async Task<Result<string>> RaiseEpochAsync(ulong epoch, CancellationToken ct)
    {
        if (Settings.Role != CopyRole.Primary)
        {
            return FerryError.WrongState($"the copy of '{Name}' on {Host} is secondary: promote it instead");
        }

        var s = Volume.Metadata.Current;
        if (epoch <= s.HighestEpoch)
        {
            return FerryError.Conflict($"epoch {epoch} is not above {s.HighestEpoch}, the highest this copy of '{Name}' has seen");
        }

        if (!(await Authority.RecordPromotionAsync(s.VolumeId, Host, epoch, ct).ConfigureAwait(false)).TryGetValue(out _, out var refused))
        {
            return refused;
        }

        Volume.Metadata.Update(m => m with { HighestEpoch = epoch });
        LogPromoted(_context.Logger, Name, epoch);
        return $"primary at epoch {epoch}";
    }

    /// <summary>Makes this copy secondary: the links stop, writes in flight finish, the activity log is emptied into the bitmap.</summary>
    public async Task DemoteAsync(CancellationToken ct)
    {
        Settings = Settings with { Role = CopyRole.Secondary };
        await StopPrimaryAsync(ct).ConfigureAwait(false);
        _fencedReason = null;
        LogDemoted(_context.Logger, Name);
    }

    /// <summary>
    /// New peers, protocol or options; links restart with them (the same settings again: a reconnect),
    /// unless the one change is whether a second primary may join.
    /// </summary>
    public async Task ApplySettingsAsync(ReplicationSettings settings, CancellationToken ct)
    {
        var wasPrimary = Settings.Role == CopyRole.Primary;
        var before = Settings;
        Settings = settings with { Role = Settings.Role };
        var onlyTwoPrimaries = Settings.AllowTwoPrimaries != before.AllowTwoPrimaries
            && Settings with { AllowTwoPrimaries = before.AllowTwoPrimaries, Peers = before.Peers } == before && Settings.Peers.SequenceEqual(before.Peers);
        if (onlyTwoPrimaries)
        {
            // A second primary's link is judged when it says hello: the links up now need not restart,
            // and a running VM's writes do not wait for them (a migration's handoff opens and closes this).
            return;
        }

        if (wasPrimary && !settings.Disconnected)
        {
            _fencedReason = null;
        }

        if (wasPrimary)
        {
            await StopLinksAsync().ConfigureAwait(false);
            StartLinks();
        }
    }

    /// <summary>The next handshake with <paramref name="peerHost"/> discards its writes (split-brain resolution).</summary>
    public Result<string> DiscardPeer(string peerHost)
    {
        if (peerHost == Host)
        {
            return FerryError.InvalidArgument(
                $"this host's own copy cannot be discarded while it is primary; run the command on the host whose copy is kept, or demote this copy first");
        }

        if (Settings.Role != CopyRole.Primary)
        {
            return FerryError.WrongState($"the copy of '{Name}' on {Host} is secondary; resolve from the primary whose copy is kept");
        }

        if (_peers.FirstOrDefault(p => p.Peer.Host == peerHost) is not { } link)
        {
            return FerryError.NotFound($"'{peerHost}' holds no copy of '{Name}' (peers: {string.Join(", ", _peers.Select(p => p.Peer.Host))})");
        }

        return link.DiscardPeerOnNextConnect();
    }

    /// <summary>Starts an online verify against one peer, or every peer when <paramref name="peerHost"/> is null; only on the primary.</summary>
    public Result<string> StartVerify(string? peerHost)
    {
        if (Settings.Role != CopyRole.Primary)
        {
            return FerryError.WrongState($"the copy of '{Name}' on {Host} is secondary; verify from the primary");
        }

        if (FirstIncoming is not null)
        {
            return FerryError.WrongState($"'{Name}' has two primaries (a migration handoff); verify once one of them is demoted");
        }

        var links = peerHost is null ? _peers : [.. _peers.Where(p => p.Peer.Host == peerHost)];
        if (links.Length == 0)
        {
            return peerHost is null
                ? FerryError.WrongState($"'{Name}' has no peer copies to verify")
                : FerryError.NotFound($"'{peerHost}' holds no copy of '{Name}' (peers: {string.Join(", ", _peers.Select(p => p.Peer.Host))})");
        }

        foreach (var link in links)
        {
            if (link.StartVerify() is { } error)
            {
                return error;
            }
        }

        return $"verifying the copies on {string.Join(", ", links.Select(l => l.Peer.Host))} against {Host}'s; blocks that differ are resynced from {Host}";
    }

    private void StartPrimary()
    {
        _fencedReason = null;
        Volume.Metadata.Update(s => s with { CrashedPrimary = true });
        StartLinks();
    }

    private void StartLinks()
    {
        _peers = [.. Settings.Peers.Select(p => new PeerLink(this, p, _context.Logger))];
        foreach (var peer in _peers)
        {
            _links.Add(Task.Run(() => peer.RunAsync(_stopping.Token)));
        }
    }

    private async Task StopLinksAsync()
    {
        await FlushPeersAsync().ConfigureAwait(false);
        await _stopping.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(_links).ConfigureAwait(false);
        _links.Clear();
        _stopping.Dispose();
        _stopping = new CancellationTokenSource();
        foreach (var peer in _peers)
        {
            peer.Dispose();
        }
    }

    /// <summary>
    /// Before links close on purpose: the peers make what they acknowledged durable, so that closing a
    /// link in step is not taken for losing writes the peer had not flushed (which would outdate it).
    /// A peer that does not answer in time is treated as lost, as it would be without this.
    /// </summary>
    private async Task FlushPeersAsync()
    {
        AckWaiter waiter;
        lock (_order)
        {
            var replicating = _peers.Count(p => p.IsReplicating);
            if (replicating == 0)
            {
                return;
            }

            waiter = AckWaiter.Rent(replicating);
            var sequence = ++_sequence;
            foreach (var peer in _peers.Where(p => p.IsReplicating))
            {
                peer.SendFlush(sequence, Epoch, waiter, holdsCredit: false);
            }
        }

        try
        {
            await waiter.WaitAsync().AsTask().WaitAsync(PeerLink.DeadAfter, Time).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // Closed without it: what the peer had not flushed counts as missed.
        }
    }

    private async Task StopPrimaryAsync(CancellationToken ct)
    {
        await StopLinksAsync().ConfigureAwait(false);
        _peers = [];
        lock (_order)
        {
            // Known only while this copy is primary without a break: another primary may write to the peers meanwhile.
            _lacks.Clear();
        }

        // Writes that got past the role check finish first. Then what this copy wrote is made durable before
        // its extents leave the log: the peers flushed as their links closed, and a power cut after a demotion
        // must not leave this copy without writes they have and nothing marked. A flush that fails leaves the
        // log as it is, so that the copy opens as a crashed primary next time, its extents marked.
        while (true)
        {
            if (_activityLog.Idle)
            {
                await Volume.FlushAsync(ct).ConfigureAwait(false);
                if (TryClearActivityLog())
                {
                    break;
                }
            }

            await Task.Delay(TimeSpan.FromMilliseconds(5), Time, ct).ConfigureAwait(false);
        }

        Volume.Metadata.Update(s => s with { CrashedPrimary = false });
    }

    private bool TryClearActivityLog()
    {
        try
        {
            _activityLog.Clear();
            return true;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    /// <summary>A primary that learned it is stale stops writing for good (until demoted).</summary>
    internal void Fence(string reason)
    {
        if (_fencedReason is null)
        {
            _fencedReason = reason;
            LogFenced(_context.Logger, Name, reason);
        }
    }

    // --- The primary's I/O ----------------------------------------------------------------------------

    public ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken ct) => Volume.ReadAsync(offset, destination, ct);

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> source, bool fua, CancellationToken ct) =>
        ChangeAsync(new Change(offset, source.Length, source, fua, ZeroFlags: null), ct);

    public ValueTask TrimAsync(long offset, long length, bool fua, CancellationToken ct) =>
        WriteZeroesAsync(offset, length, fua ? WriteZeroesFlags.Fua : WriteZeroesFlags.None, ct);

    public async ValueTask WriteZeroesAsync(long offset, long length, WriteZeroesFlags flags, CancellationToken ct)
    {
        // The activity log takes ranges of at most ~4 GiB; NBD trims and zeroes can be larger.
        for (var done = 0L; done < length; done += ActivityLog.MaxRangeLength)
        {
            var part = Math.Min(ActivityLog.MaxRangeLength, length - done);
            await ChangeAsync(new Change(offset + done, part, default, (flags & WriteZeroesFlags.Fua) != 0, flags & ~WriteZeroesFlags.Fua), ct).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// A write or a zeroing: recorded in the activity log, queued to every replicating peer under the
    /// ordering lock, applied locally outside it (after any earlier overlapping change), then made
    /// durable (FUA) and acknowledged by the protocol. A large write a plain link can send from the file
    /// is applied first and queued after: the link then sends it from the page cache, not from memory.
    /// </summary>
    private async ValueTask ChangeAsync(Change change, CancellationToken ct)
    {
        ThrowUnlessWritable();
        await _activityLog.BeginAsync(change.Offset, change.Length, ct).ConfigureAwait(false);
        try
        {
            var credits = await TakeCreditsAsync(change.DataBytes, ct).ConfigureAwait(false);
            var applyFirst = Settings.Protocol != ReplicationProtocol.A && change.IsLendable && AnyPeerSendsFromFile();
            long range = 0;
            var queued = false;
            var applying = false;
            AckWaiter? waiter = null;
            try
            {
                while (true)
                {
                    Task? earlier;
                    lock (_order)
                    {
                        if (range == 0)
                        {
                            range = _inFlight.Enter(change.Offset, change.Length);
                        }

                        earlier = _inFlight.Blocker(range);
                        if (earlier is null)
                        {
                            if (!applyFirst)
                            {
                                waiter = Queue(change, credits, inFile: false);
                                queued = true;
                            }

                            break;
                        }
                    }

                    await earlier.WaitAsync(ct).ConfigureAwait(false);
                }

                applying = true;
                change.ApplyTo(Volume);
                if (!queued)
                {
                    lock (_order)
                    {
                        waiter = Queue(change, credits, inFile: true);
                        queued = true;
                    }
                }
            }
            catch when (!queued)
            {
                if (applying)
                {
                    MarkUnsure(change); // this copy's range is partly written, the peers' is not
                }

                ReturnCredits(credits, change.DataBytes);
                throw;
            }
            catch
            {
                MarkUnsure(change); // the peers may now hold what this copy failed to write
                if (waiter is not null)
                {
                    await waiter.WaitAsync().ConfigureAwait(false); // every peer answers once; the waiter goes back to its pool
                }

                throw;
            }
            finally
            {
                if (range != 0)
                {
                    lock (_order)
                    {
                        _inFlight.Exit(range);
                    }
                }
            }

            if (change.Fua)
            {
                try
                {
                    await Volume.FlushAsync(ct).ConfigureAwait(false);
                }
                catch when (waiter is not null)
                {
                    // The peers may still be sending from the caller's buffer, which is theirs until they answered.
                    await waiter.WaitAsync().ConfigureAwait(false);
                    throw;
                }
            }

            await CompleteAsync(waiter).ConfigureAwait(false);
        }
        finally
        {
            _activityLog.End(change.Offset, change.Length);
        }
    }

    /// <summary>
    /// After a failed local change: the range may differ between the copies (the peers may have applied it,
    /// this copy not, or only part of it), so it is marked and the connected peers resync it from this copy.
    /// </summary>
    private void MarkUnsure(in Change change)
    {
        lock (_order)
        {
            Bitmap.Mark(change.Offset, change.Length);
            foreach (var lacks in _lacks.Values)
            {
                lacks.Marks.Mark(change.Offset, change.Length);
            }

            // Asked under the lock that marks: a resync ending meanwhile must not clear these marks as done.
            foreach (var peer in _peers)
            {
                if (peer.IsReplicating)
                {
                    peer.RequestRepair();
                }
            }
        }
    }

    /// <summary>Whether any block is marked out of sync with a peer.</summary>
    internal bool HasMarks()
    {
        lock (_order)
        {
            return Bitmap.CountDirty() > 0;
        }
    }

    private bool AnyPeerSendsFromFile()
    {
        foreach (var peer in _peers)
        {
            if (peer.SendsFromFile)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Under the ordering lock: the change gets its sequence number and goes to every replicating peer.</summary>
    private AckWaiter? Queue(in Change change, int credits, bool inFile)
    {
        BeginChange(change.Offset, change.Length, credits, change.DataBytes);
        var waiter = RentWaiter();
        var sequence = ++_sequence;
        for (var i = 0; i < _peers.Length; i++)
        {
            if (_peers[i].IsReplicating)
            {
                change.SendTo(_peers[i], sequence, Epoch, waiter, HoldsCredit(credits, i), inFile);
            }
        }

        return waiter;
    }

    /// <summary>
    /// Runs <paramref name="read"/> under the ordering lock once every change sent before it to the range
    /// has reached this copy: what it reads for a peer then holds all of them.
    /// </summary>
    internal async ValueTask<T> ReadSettledAsync<T>(long offset, long length, Func<T> read, CancellationToken ct)
    {
        long range;
        lock (_order)
        {
            range = _inFlight.Enter(offset, length);
        }

        try
        {
            while (true)
            {
                Task? earlier;
                lock (_order)
                {
                    earlier = _inFlight.Blocker(range);
                    if (earlier is null)
                    {
                        return read();
                    }
                }

                await earlier.WaitAsync(ct).ConfigureAwait(false);
            }
        }
        finally
        {
            lock (_order)
            {
                _inFlight.Exit(range);
            }
        }
    }

    /// <summary>A write (<see cref="Data"/>) or, with <see cref="ZeroFlags"/>, a zeroing of a range; FUA is applied after it.</summary>
    private readonly record struct Change(long Offset, long Length, ReadOnlyMemory<byte> Data, bool Fua, WriteZeroesFlags? ZeroFlags)
    {
        /// <summary>
        /// Writes this large are sent from the caller's buffer when the protocol waits for the peer (C, B):
        /// copying them into the send queue costs more than a send of their own. Smaller ones are copied and
        /// go out many to a send.
        /// </summary>
        private const int LendAtLeast = 64 * 1024;

        public bool IsLendable => ZeroFlags is null && Data.Length >= LendAtLeast;

        /// <summary>The data the change sends: a write's bytes (a zeroing sends only its range).</summary>
        public long DataBytes => ZeroFlags is null ? Data.Length : 0;

        public void ApplyTo(Volume volume)
        {
            if (ZeroFlags is { } flags)
            {
                volume.WriteZeroes(Offset, Length, flags);
            }
            else
            {
                volume.Write(Offset, Data.Span, fua: false);
            }
        }

        public void SendTo(PeerLink peer, ulong sequence, ulong epoch, AckWaiter? waiter, bool holdsCredit, bool inFile)
        {
            if (ZeroFlags is { } flags)
            {
                peer.SendZero(sequence, epoch, Offset, Length, Fua, (flags & WriteZeroesFlags.NoHole) == 0, waiter, holdsCredit);
            }
            else if (waiter is not null && IsLendable)
            {
                peer.SendWriteFromBuffer(sequence, epoch, Offset, Data, Fua, waiter, holdsCredit, inFile);
            }
            else
            {
                peer.SendWrite(sequence, epoch, Offset, Data.Span, Fua, resync: false, waiter, holdsCredit);
            }
        }
    }

    public async ValueTask FlushAsync(CancellationToken ct)
    {
        ThrowUnlessWritable();
        var ticket = _activityLog.BeginFlush();
        var credits = await TakeCreditsAsync(0, ct).ConfigureAwait(false);
        AckWaiter? waiter;
        lock (_order)
        {
            waiter = RentWaiter();
            var sequence = ++_sequence;
            for (var i = 0; i < _peers.Length; i++)
            {
                if (_peers[i].IsReplicating)
                {
                    _peers[i].SendFlush(sequence, Epoch, waiter, HoldsCredit(credits, i));
                }
                else if (HoldsCredit(credits, i))
                {
                    _peers[i].ReturnCredit(0);
                }
            }
        }

        await Volume.FlushAsync(ct).ConfigureAwait(false);
        await CompleteAsync(waiter).ConfigureAwait(false);
        _activityLog.FlushDone(ticket);
    }

    public ValueTask<int> MapAsync(long offset, long length, Memory<AllocationExtent> extents, CancellationToken ct) =>
        Volume.MapAsync(offset, length, extents, ct);

    private void ThrowUnlessWritable()
    {
        if (Settings.Role != CopyRole.Primary)
        {
            throw new BlockDeviceException(BlockError.ReadOnly, $"the copy of '{Name}' on {Host} is secondary");
        }

        if (_fencedReason is { } reason)
        {
            throw new BlockDeviceException(BlockError.Io, $"the copy of '{Name}' on {Host} is fenced: {reason}");
        }
    }

    /// <summary>One credit per replicating peer (bit i: peer i), so no link queues without bound.</summary>
    private async ValueTask<int> TakeCreditsAsync(long size, CancellationToken ct)
    {
        var credits = 0;
        var peers = _peers;
        for (var i = 0; i < peers.Length; i++)
        {
            if (peers[i].IsReplicating)
            {
                await peers[i].TakeCreditAsync(size, ct).ConfigureAwait(false);
                credits |= 1 << i;
            }
        }

        return credits;
    }

    private static bool HoldsCredit(int credits, int peer) => (credits & (1 << peer)) != 0;

    /// <summary>
    /// Under the ordering lock, before a change is applied: peers that will not receive it get its blocks
    /// marked (and are outdated), and a new generation starts if the peers may know the current one.
    /// </summary>
    private void BeginChange(long offset, long length, int credits, long size)
    {
        ThrowUnlessWritable();
        Volatile.Write(ref _lastApplicationWrite, Time.GetTimestamp());
        for (var i = 0; i < _peers.Length; i++)
        {
            var peer = _peers[i];
            if (peer.IsReplicating)
            {
                continue;
            }

            if (HoldsCredit(credits, i))
            {
                peer.ReturnCredit(size);
            }

            StartGenerationWithout(peer.Peer.Host);
            Bitmap.Mark(offset, length);
            LacksOf(peer.Peer.Host)?.Marks.Mark(offset, length);
            peer.EnsureOutdating();
        }
    }

    /// <summary>
    /// Under the ordering lock, before the first change <paramref name="peerHost"/> will lack: a new
    /// generation if the peer may know the current one, so that the next handshake sees it missed writes.
    /// </summary>
    internal void StartGenerationWithout(string peerHost)
    {
        var s = Volume.Metadata.Current;
        if (!GenerationRules.NeedsNewGeneration(s.Generations, s.LastSharedCurrent))
        {
            return;
        }

        // The old current id is the one the peer may hold: recorded as last shared, so that the next
        // writes stay in the new generation (with none recorded, every write would start another).
        var fresh = GenerationIdSource.Next(s.Generations);
        Volume.Metadata.Update(m => m with { Generations = GenerationRules.StartNewGeneration(m.Generations, fresh), LastSharedCurrent = m.Generations.Current });
        LogNewGeneration(_context.Logger, Name, peerHost);

        // Peers that receive the next writes move on with them, before them in their stream.
        var inStep = GenerationRules.FinishSyncAsSource(Volume.Metadata.Current.Generations);
        foreach (var other in _peers)
        {
            other.SendGenerationIfInStep(inStep);
        }
    }

    private AckWaiter? RentWaiter()
    {
        // Protocol A acknowledges after the local write, flushes included: the peer follows on its own.
        if (Settings.Protocol == ReplicationProtocol.A)
        {
            return null;
        }

        var count = 0;
        foreach (var peer in _peers)
        {
            count += peer.IsReplicating ? 1 : 0;
        }

        return count == 0 ? null : AckWaiter.Rent(count);
    }

    /// <summary>After a local change failed: nothing was queued, so the credits it took go back.</summary>
    private void ReturnCredits(int credits, long size)
    {
        for (var i = 0; i < _peers.Length; i++)
        {
            if (_peers[i].IsReplicating && HoldsCredit(credits, i))
            {
                _peers[i].ReturnCredit(size);
            }
        }
    }

    /// <summary>Waits for the peers the protocol waits for, and for lost peers to be outdated, before a change is acknowledged.</summary>
    private async ValueTask CompleteAsync(AckWaiter? waiter)
    {
        var status = waiter is null ? AckStatus.Ok : await waiter.WaitAsync().ConfigureAwait(false);
        foreach (var peer in _peers)
        {
            var outdating = peer.Outdating;
            if (!(outdating.IsCompleted ? outdating.Result : await outdating.ConfigureAwait(false)))
            {
                throw new BlockDeviceException(BlockError.Io, $"the copy on {peer.Peer.Host} was lost and could not be marked Outdated; the write is not acknowledged");
            }
        }

        ThrowUnlessWritable();
        if (status != AckStatus.Ok)
        {
            throw new BlockDeviceException(BlockError.Io, $"a copy of '{Name}' failed the write: {status}");
        }
    }

    // --- Resync, from the links -------------------------------------------------------------------------

    internal CopyView LocalView()
    {
        var s = Volume.Metadata.Current;
        return new CopyView(s.Generations, s.Disk, Settings.Role == CopyRole.Primary, _crashedAtOpen, (ulong)Bitmap.CountDirty());
    }

    /// <summary>The source's side of a resync's start: marks, sync id and bitmap are durable before the target hears of it.</summary>
    internal ResyncRun BeginResync(bool full)
    {
        if (full)
        {
            Bitmap.MarkAll();
        }

        var ids = Volume.Metadata.Current.Generations;
        var begun = GenerationRules.BeginSyncAsSource(ids, GenerationIdSource.Next(ids));
        if (begun != ids)
        {
            Volume.Metadata.Update(s => s with { Generations = begun });
        }

        Volume.Metadata.WriteBitmap(Bitmap);
        return new ResyncRun(this, full);
    }

    internal GenerationIds IdsAtSyncEnd() => GenerationRules.FinishSyncAsSource(Volume.Metadata.Current.Generations);

    /// <summary>
    /// A resync block the peer has (acknowledged, or found identical): it no longer lacks it, and the shared
    /// bitmap lets it go when no other peer may lack it either. A peer in a resync of its own may still
    /// lack it, whatever its link says: it must stay marked in case that resync is cut short.
    /// </summary>
    internal void ResyncBlockDone(PeerLink link, long offset, long length)
    {
        lock (_order)
        {
            LacksOf(link.Peer.Host)?.Marks.Clear(offset, length);
            if (OthersInStepAndNoRepairOwed(link))
            {
                Bitmap.Clear(offset, length);
            }
        }
    }

    /// <summary>
    /// Under the ordering lock, as <paramref name="link"/>'s resync clears marks: every other peer is in step, and
    /// no peer is owed a repair (blocks marked by a failed change after the resync read them stay marked).
    /// </summary>
    private bool OthersInStepAndNoRepairOwed(PeerLink link) => !link.RepairRequested && _peers.All(p => p == link || p.InStep);

    /// <summary>After the target recorded the end: this copy is in step with every peer again unless one is still missing.</summary>
    internal void FinishResync(PeerLink link)
    {
        lock (_order)
        {
            _lacks.Remove(link.Peer.Host);
            if (OthersInStepAndNoRepairOwed(link))
            {
                // Every peer has every block: marks left over (blocks one peer's resync skipped, as it did not lack them) mean nothing now.
                Bitmap.ClearAll();
            }

            if (_peers.All(p => p.IsReplicating))
            {
                Volume.Metadata.Update(s => s with
                {
                    Generations = GenerationRules.FinishSyncAsSource(s.Generations),
                    LastSharedCurrent = s.Generations.Current,
                });
                _crashedAtOpen = false;
            }
        }

        Volume.Metadata.WriteBitmap(Bitmap);
    }

    // --- What each peer lacks (PeerLacks), under the ordering lock ------------------------------------------

    /// <summary>What <paramref name="peerHost"/> lacks, when this copy has known it since the peer was last in step.</summary>
    internal PeerLacks? LacksOf(string peerHost) => _lacks.GetValueOrDefault(peerHost);

    /// <summary>A peer in step, holding generation <paramref name="generation"/>, is lost: from now on every block it does not get is marked for it.</summary>
    internal PeerLacks StartLacks(string peerHost, ulong generation) =>
        _lacks[peerHost] = new PeerLacks(generation, new DirtyBitmap(Volume.Size, Bitmap.BlockSize));

    /// <summary>The peer is in step, or holds data these marks do not describe.</summary>
    internal void ForgetLacks(string peerHost) => _lacks.Remove(peerHost);

    /// <summary>A handshake found the peer at this copy's generation: writes under it are shared.</summary>
    internal void SharedGeneration(ulong peerCurrent)
    {
        var s = Volume.Metadata.Current;
        if (peerCurrent == s.Generations.Current && s.LastSharedCurrent != peerCurrent)
        {
            Volume.Metadata.Update(m => m with { LastSharedCurrent = peerCurrent });
        }
    }

    // --- The secondary's side ---------------------------------------------------------------------------

    /// <summary>
    /// Takes a link from a primary. A link from the same host again, or from a primary of a lower epoch,
    /// replaces the one this copy had (that primary went away unnoticed). A link from another primary at
    /// the same epoch is the second primary of a migration's handoff: it is taken beside the first when
    /// that one is in step over protocol C, so that writes on either primary reach this copy too
    /// (<see cref="JoinRefusal"/>). A primary copy takes one only as the other half of two primaries
    /// (<see cref="TwoPrimariesRefusal"/>). Null when taken, otherwise why not.
    /// </summary>
    internal async Task<string?> AttachIncomingAsync(ReplicaSession session, HelloFrame hello)
    {
        ReplicaSession[] replaced;
        lock (_sessions)
        {
            if (Settings.Role == CopyRole.Primary && TwoPrimariesRefusal(hello) is { } refusal)
            {
                return refusal;
            }

            var current = _incoming;
            var beside = current.Where(s => s.PeerHost != hello.Host && s.PrimaryEpoch >= hello.Epoch).ToArray();
            if (beside.Length > 0 && JoinRefusal(beside, hello) is { } notBeside)
            {
                return notBeside;
            }

            replaced = [.. current.Except(beside)];
            Volatile.Write(ref _incoming, [.. beside, session]);
        }

        foreach (var previous in replaced)
        {
            await previous.StopAsync().ConfigureAwait(false);
        }

        return null;
    }

    /// <summary>
    /// Whether a second primary's link may join the one this copy follows: only a secondary, only one
    /// more, and only while the first is in step over protocol C (a copy in a resync takes no second
    /// source; the second primary asks again and, until then, marks what this copy misses).
    /// </summary>
    private string? JoinRefusal(ReplicaSession[] beside, in HelloFrame hello)
    {
        var first = beside[0];
        if (Settings.Role == CopyRole.Primary || beside.Length > 1)
        {
            return $"the copy of '{Name}' on {Host} already has two primaries: {(Settings.Role == CopyRole.Primary ? Host + " and " : "")}{string.Join(" and ", beside.Select(s => s.PeerHost))}";
        }

        return first.Connection != ConnectionState.Connected || first.Protocol != ReplicationProtocol.C || hello.Protocol != ReplicationProtocol.C
            ? $"the copy of '{Name}' on {Host} follows the primary on {first.PeerHost} ({first.Connection}, protocol {first.Protocol}); a second primary is taken beside it only while it is in step over protocol C"
            : null;
    }

    /// <summary>
    /// Whether this primary may take a link from another primary: both allow two primaries, replicate
    /// with protocol C and share the epoch (the second primary joined this one's rather than taking a
    /// newer), and this one has not gone on writing without it.
    /// </summary>
    private string? TwoPrimariesRefusal(in HelloFrame hello)
    {
        if (!Settings.AllowTwoPrimaries)
        {
            return $"the copy of '{Name}' on {Host} is primary too; two primaries are only for a migration handoff (volume replicate --allow-two-primaries on both, then promote --dual)";
        }

        if (hello.Protocol != ReplicationProtocol.C || Settings.Protocol != ReplicationProtocol.C)
        {
            return $"two primaries of '{Name}' need protocol C on both copies";
        }

        if (hello.Epoch != Epoch)
        {
            return $"the other primary of '{Name}' is at epoch {hello.Epoch}, this one at {Epoch}: two primaries share one epoch";
        }

        var host = hello.Host;
        return _peers.FirstOrDefault(p => p.Peer.Host == host) switch
        {
            null => $"'{host}' is not a peer of the copy of '{Name}' on {Host} (peers: {string.Join(", ", _peers.Select(p => p.Peer.Host))})",
            { WentOnWithoutPeer: true } => $"the copy of '{Name}' on {Host} went on writing without the other primary and had it marked Outdated; demote one of them",
            _ => null,
        };
    }

    internal void DetachIncoming(ReplicaSession session)
    {
        lock (_sessions)
        {
            Volatile.Write(ref _incoming, [.. _incoming.Where(s => s != session)]);
        }
    }

    /// <summary>Whether a primary other than the one on <paramref name="session"/> replicates to this copy too.</summary>
    internal bool FollowsAnotherPrimary(ReplicaSession session) => Volatile.Read(ref _incoming).Any(s => s != session);

    /// <summary>Whether a resync from this copy to a peer is under way.</summary>
    internal bool ResyncsAPeer => _peers.Any(p => p.Status().Connection == ConnectionState.SyncSource);

    /// <summary>Whether this copy is UpToDate and follows the primary on <paramref name="host"/> in step.</summary>
    internal bool InStepWithPrimaryOn(string host) =>
        Volume.Metadata.Current.Disk == DiskState.UpToDate
        && Volatile.Read(ref _incoming).Any(s => s.PeerHost == host && s.Connection == ConnectionState.Connected);

    private ReplicaSession? FirstIncoming => Volatile.Read(ref _incoming) is [var first, ..] ? first : null;

    private async Task StopIncomingAsync()
    {
        foreach (var session in Volatile.Read(ref _incoming))
        {
            await session.StopAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Under the ordering lock, as this primary starts to go on without <paramref name="peerHost"/>: if that
    /// peer is a second primary, its link here ends and no new one is taken, so its next write must outdate
    /// this copy in turn, which the authority refuses (this copy asked first) and the peer is fenced.
    /// </summary>
    internal void StopOtherPrimary(string peerHost)
    {
        if (Settings.Role == CopyRole.Primary && Volatile.Read(ref _incoming).FirstOrDefault(s => s.PeerHost == peerHost) is { } other)
        {
            _ = other.StopAsync();
        }
    }

    /// <summary>
    /// Makes this secondary a second primary beside the one replicating to it, for a live migration's
    /// handoff: it keeps the primary's link and epoch and opens its own links, back to the primary and to
    /// any third copy, so writes on either primary reach every copy before they complete. Only with
    /// protocol C, every copy allowing two primaries, this one in step; the answer comes once the link
    /// back to the primary is up (or the promotion is undone). A third copy that cannot be reached is
    /// handled like any lost peer: writes here mark what it misses and have it outdated.
    /// </summary>
    public async Task<Result<string>> PromoteSecondAsync(CancellationToken ct)
    {
        if (Settings.Role == CopyRole.Primary)
        {
            return FerryError.WrongState($"the copy of '{Name}' on {Host} is already primary (epoch {Epoch})");
        }

        if (!Settings.AllowTwoPrimaries || Settings.Peers.Count == 0 || Settings.Protocol != ReplicationProtocol.C)
        {
            return FerryError.WrongState(
                $"two primaries of '{Name}' need protocol C and --allow-two-primaries (ferry volume replicate) on both copies");
        }

        if (Volatile.Read(ref _incoming) is not [{ Connection: ConnectionState.Connected, Protocol: ReplicationProtocol.C } incoming]
            || Volume.Metadata.Current.Disk != DiskState.UpToDate)
        {
            return FerryError.WrongState($"the copy of '{Name}' on {Host} is not connected and in step with its primary over protocol C; wait for the resync (volume wait-sync on the primary)");
        }

        if (!Settings.Peers.Any(p => p.Host == incoming.PeerHost))
        {
            return FerryError.WrongState($"the primary of '{Name}' is on {incoming.PeerHost}, which is not among this copy's peers ({string.Join(", ", Settings.Peers.Select(p => p.Host))})");
        }

        Settings = Settings with { Role = CopyRole.Primary };
        StartPrimary();
        var primary = _peers.First(p => p.Peer.Host == incoming.PeerHost);
        var started = Time.GetTimestamp();
        while (primary.Status().Connection != ConnectionState.Connected || _peers.Any(p => p.Status().Connection == ConnectionState.Connecting && Time.GetElapsedTime(started) < ThirdCopyWait))
        {
            var refused = primary.Status().Connection == ConnectionState.StandAlone;
            if (refused || Time.GetElapsedTime(started) > TimeSpan.FromSeconds(15) || incoming.Connection != ConnectionState.Connected)
            {
                var why = primary.Status().Reason ?? "it did not come up";
                Settings = Settings with { Role = CopyRole.Secondary };
                await StopPrimaryAsync(ct).ConfigureAwait(false);
                return FerryError.Unavailable($"the link from {Host} back to {primary.Peer.Host} did not come up, so '{Name}' stays secondary here: {why}");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(20), Time, ct).ConfigureAwait(false);
        }

        LogSecondPrimary(_context.Logger, Name, primary.Peer.Host, Epoch);
        var others = _peers.Where(p => p != primary).Select(p => $"; the copy on {p.Peer.Host} is {Display(p.Status().Connection)}").ToArray();
        return $"primary beside {primary.Peer.Host} at epoch {Epoch}: writes on either copy reach both{string.Concat(others)}; demote one to end the handoff";

        static string Display(ConnectionState state) => state == ConnectionState.Connected ? "linked too" : $"not linked ({state}): writes here mark what it misses";
    }

    /// <summary>How long a second primary waits for its link to a third copy before it goes on without it.</summary>
    private static readonly TimeSpan ThirdCopyWait = TimeSpan.FromSeconds(3);

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _lifetime.CancelAsync().ConfigureAwait(false);
        if (Settings.Role == CopyRole.Primary)
        {
            await StopPrimaryAsync(CancellationToken.None).ConfigureAwait(false);
        }

        await StopIncomingAsync().ConfigureAwait(false);
        Volume.Metadata.WriteBitmap(Bitmap);
        _stopping.Dispose();
        _lifetime.Dispose();
        _activityLog.Dispose();
    }

    [LoggerMessage(2300, LogLevel.Warning, "volume {VolumeId}: stopped while primary; {Extents} activity-log extents marked for resync")]
    private static partial void LogRecovered(ILogger logger, string volumeId, long extents);

    [LoggerMessage(2301, LogLevel.Information, "volume {VolumeId}: promoted to primary at epoch {Epoch}")]
    private static partial void LogPromoted(ILogger logger, string volumeId, ulong epoch);

    [LoggerMessage(2302, LogLevel.Information, "volume {VolumeId}: demoted to secondary")]
    private static partial void LogDemoted(ILogger logger, string volumeId);

    [LoggerMessage(2303, LogLevel.Error, "volume {VolumeId}: fenced, writes refused: {Reason}")]
    private static partial void LogFenced(ILogger logger, string volumeId, string reason);

    [LoggerMessage(2304, LogLevel.Warning, "volume {VolumeId}: promotion forced: {Warning}")]
    private static partial void LogForced(ILogger logger, string volumeId, string warning);

    [LoggerMessage(2305, LogLevel.Information, "volume {VolumeId}: new data generation, {PeerHost} does not receive the writes")]
    private static partial void LogNewGeneration(ILogger logger, string volumeId, string peerHost);

    [LoggerMessage(2306, LogLevel.Information, "volume {VolumeId}: primary beside {PeerHost} at epoch {Epoch} (two primaries)")]
    private static partial void LogSecondPrimary(ILogger logger, string volumeId, string peerHost, ulong epoch);
}
