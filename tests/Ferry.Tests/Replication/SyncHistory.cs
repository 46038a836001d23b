using System.Collections.Concurrent;
using System.Numerics;
using CsCheck;
using Ferry.Storage.Replication;
using Ferry.Storage.Replication.Wire;
using Ferry.Storage.Volumes;

namespace Ferry.Tests.Replication;

/// <summary>
/// Two copies of one volume living through a random history (writes, disconnects, crashes, promotions,
/// reconnects with resyncs that may be cut short), kept by the rules a replication engine would follow,
/// next to a model of the ground truth: each copy's block contents and the acknowledged writes its data
/// reflects. Every reconnect checks the decision against that truth.
/// </summary>
internal sealed class SyncHistory
{
    private const int Blocks = 8;
    private const ulong AllBlocks = (1UL << Blocks) - 1;

    public enum Kind
    {
        Write,
        Disconnect,
        Crash,
        Promote,
        ForcePromote,
        Demote,
        Reconnect,
    }

    /// <summary>One event; <paramref name="Arg"/> feeds whatever choice the event makes (block, crash landing, where a resync stops).</summary>
    public readonly record struct Step(Kind Kind, int Copy, int Arg);

    public static readonly Gen<Step[]> Steps = Gen.Select(Gen.Int[0, 9], Gen.Int[0, 1], Gen.Int[0, 1 << 16], (kind, copy, arg) => new Step(
        kind switch
        {
            <= 2 => Kind.Write,
            3 => Kind.Disconnect,
            4 => Kind.Crash,
            5 => Kind.Promote,
            6 => Kind.ForcePromote,
            7 => Kind.Demote,
            _ => Kind.Reconnect,
        },
        copy,
        arg)).Array[1, 60];

    private readonly Copy[] _copies = [new(), new()];
    private readonly Dictionary<int, int> _blockOfWrite = [];
    private readonly List<string> _log = [];
    private readonly ConcurrentDictionary<SyncRule, int> _rulesSeen;
    private bool _connected;
    private ulong _idsIssued;
    private int _writesIssued;

    public SyncHistory(ConcurrentDictionary<SyncRule, int> rulesSeen)
    {
        _rulesSeen = rulesSeen;

        // A volume created with a generation on one host, already in use, and a new copy added on another.
        _copies[0].Ids = new GenerationIds(NewId(), 0, 0, 0);
        _copies[0].Primary = true;
        _copies[1].Ids = GenerationRules.Fresh;
        _copies[1].Disk = DiskState.Inconsistent;
    }

    public void Run(Step[] steps)
    {
        foreach (var step in steps)
        {
            _log.Add(step.ToString());
            switch (step.Kind)
            {
                case Kind.Write: Write(step.Copy, step.Arg); break;
                case Kind.Disconnect: Disconnect(); break;
                case Kind.Crash: Crash(step.Copy, step.Arg); break;
                case Kind.Promote: Promote(step.Copy, force: false); break;
                case Kind.ForcePromote: Promote(step.Copy, force: true); break;
                case Kind.Demote: _copies[step.Copy].Primary = false; break;
                case Kind.Reconnect: Reconnect(step.Arg); break;
            }
        }
    }

    // Distinct and non-zero: multiplying by an odd constant is a bijection on 64-bit integers.
    private ulong NewId() => ++_idsIssued * 0x9E37_79B9_7F4A_7C15UL;

    private void Write(int index, int arg)
    {
        var (copy, peer) = (_copies[index], _copies[1 - index]);
        if (!copy.Primary || copy.Disk != DiskState.UpToDate)
        {
            return;
        }

        var block = arg % Blocks;
        var write = ++_writesIssued;
        _blockOfWrite[write] = block;
        if (_connected)
        {
            // Protocol C: acknowledged once both disks have it.
            copy.Data[block] = peer.Data[block] = write;
            copy.Acked.Add(write);
            peer.Acked.Add(write);
            return;
        }

        if (GenerationRules.NeedsNewGeneration(copy.Ids, copy.LastShared))
        {
            copy.LastShared = copy.Ids.Current;
            copy.Ids = GenerationRules.StartNewGeneration(copy.Ids, NewId());

            // Invariant 3: the cluster records the absent peer Outdated before the write goes on.
            if (peer.Disk == DiskState.UpToDate && !peer.Primary)
            {
                peer.Disk = DiskState.Outdated;
            }
        }

        copy.Bitmap |= 1UL << block; // marked before the write is issued
        copy.Data[block] = write;
        copy.Acked.Add(write);
    }

    private void Disconnect() => _connected = false;

    private void Crash(int index, int arg)
    {
        var (copy, peer) = (_copies[index], _copies[1 - index]);
        if (_connected && copy.Primary)
        {
            // A write in flight reached either disk, both or neither, and was acknowledged to no one. The
            // crashed copy's activity log covers its block and is folded into the bitmap at restart.
            var block = arg % Blocks;
            var write = ++_writesIssued;
            if ((arg / Blocks & 1) != 0)
            {
                copy.Data[block] = write;
            }

            if ((arg / Blocks & 2) != 0)
            {
                peer.Data[block] = write;
            }

            copy.Bitmap |= 1UL << block;
        }

        copy.CrashedPrimary |= copy.Primary;
        copy.Primary = false;
        Disconnect();
    }

    private void Promote(int index, bool force)
    {
        var (copy, peer) = (_copies[index], _copies[1 - index]);
        if (copy.Primary || (_connected && peer.Primary))
        {
            return;
        }

        if (force && !_connected && copy.Disk == DiskState.Outdated)
        {
            copy.Disk = DiskState.UpToDate; // the operator's --force: how split brains happen
        }

        copy.Primary = copy.Disk == DiskState.UpToDate;
    }

    private void Reconnect(int arg)
    {
        if (_connected)
        {
            return;
        }

        var (a, b) = (_copies[0], _copies[1]);
        RecordShared(); // the handshake
        var decision = SyncDecision.Decide(a.View, b.View);
        _rulesSeen.AddOrUpdate(decision.Rule, 1, (_, n) => n + 1);
        Check(decision.Mirror() == SyncDecision.Decide(b.View, a.View), $"the peer's decision does not mirror {decision}");

        var aOnly = !a.Acked.IsSubsetOf(b.Acked);
        var bOnly = !b.Acked.IsSubsetOf(a.Acked);
        Check((decision.Outcome == SyncOutcome.SplitBrain) == (aOnly && bOnly),
            $"split brain must be reported exactly when both copies hold acknowledged writes the other lacks ({aOnly}, {bOnly}): {decision}");

        if (decision.Source is { } side)
        {
            var (source, target) = side == CopySide.Local ? (a, b) : (b, a);
            Check(target.Acked.IsSubsetOf(source.Acked), $"{decision} discards acknowledged writes only the target has");
            Resync(source, target, decision.IsFullSync, arg);
        }
        else if (decision.Outcome == SyncOutcome.NoSync)
        {
            Check(a.Data.SequenceEqual(b.Data) && a.Acked.SetEquals(b.Acked) && a.Bitmap == 0 && b.Bitmap == 0, $"{decision} between copies that differ");
            Connect();
        }
        else if (decision.Outcome == SyncOutcome.SplitBrain)
        {
            Discard(arg);
        }
        else
        {
            Check(false, $"two copies of one volume reached {decision}");
        }
    }

    // The operator discards one copy, or leaves the volume split for now.
    private void Discard(int arg)
    {
        if (arg % 3 == 2)
        {
            return;
        }

        var side = arg % 3 == 0 ? CopySide.Local : CopySide.Peer;
        var result = SplitBrainResolution.Discard(_copies[0].View, _copies[1].View, side);
        Check(result.IsOk, $"discard refused: {result.Error}");
        var discard = result.Value;
        _rulesSeen.AddOrUpdate(discard.Sync.Rule, 1, (_, n) => n + 1);

        var (victim, kept) = side == CopySide.Local ? (_copies[0], _copies[1]) : (_copies[1], _copies[0]);
        Check(discard.DiscardedGeneration == victim.Ids.Current, "the report names the discarded generation");
        if (discard.DiscardedBlocks is { } blocks)
        {
            // Every block holding a write the kept copy lacks is among those reported.
            Check(blocks == (ulong)BitOperations.PopCount(victim.Bitmap)
                && victim.Acked.Except(kept.Acked).All(w => (victim.Bitmap >> _blockOfWrite[w] & 1) != 0),
                "the report misses blocks whose writes are discarded");
        }

        Resync(kept, victim, discard.Sync.IsFullSync, arg / 3);
    }

    // A resync by the rules, cut short at one of its persistence points when arg says so: after the
    // source recorded the start, part-way through the copy, or after only the target recorded the end.
    private void Resync(Copy source, Copy target, bool full, int arg)
    {
        var stop = arg % 6;
        _connected = true; // losing the connection now interrupts the resync
        source.Ids = GenerationRules.BeginSyncAsSource(source.Ids, NewId());
        source.Bitmap |= full ? AllBlocks : target.Bitmap;
        if (stop == 0)
        {
            Disconnect();
            return;
        }

        target.Ids = GenerationRules.BeginSyncAsTarget(source.Ids);
        target.Disk = DiskState.Inconsistent;
        target.Acked.IntersectWith(source.Acked);
        var toCopy = stop == 1 ? arg / 6 % Blocks : Blocks;
        for (var block = 0; block < Blocks && toCopy > 0; block++)
        {
            if ((source.Bitmap >> block & 1) != 0)
            {
                target.Data[block] = source.Data[block];
                source.Bitmap &= ~(1UL << block);
                toCopy--;
            }
        }

        target.Bitmap = source.Bitmap; // both ends hold the merged bitmap while resyncing
        if (stop == 1)
        {
            Disconnect();
            return;
        }

        Check(target.Data.SequenceEqual(source.Data), $"a finished {(full ? "full" : "bitmap")} resync left different data");
        target.Ids = GenerationRules.FinishSyncAsTarget(source.Ids);
        RecordShared(); // the source records it before sending the end
        target.Disk = DiskState.UpToDate;
        target.Acked = [.. source.Acked];
        target.CrashedPrimary = false;
        if (stop == 2)
        {
            Disconnect();
            return;
        }

        source.Ids = GenerationRules.FinishSyncAsSource(source.Ids);
        Connect();
        var after = SyncDecision.Decide(_copies[0].View, _copies[1].View);
        Check(after.Outcome == SyncOutcome.NoSync, $"after the resync the copies compare as {after}");
    }

    private void Connect()
    {
        _connected = true;
        RecordShared();
        foreach (var copy in _copies)
        {
            copy.CrashedPrimary = false;
            if (copy.Disk == DiskState.Outdated)
            {
                copy.Disk = DiskState.UpToDate;
            }
        }

        if (_copies[0].Primary)
        {
            _copies[1].Primary = false; // one primary while connected
        }
    }

    private void RecordShared()
    {
        if (_copies[0].Ids.Current == _copies[1].Ids.Current)
        {
            _copies[0].LastShared = _copies[1].LastShared = _copies[0].Ids.Current;
        }
    }

    private void Check(bool condition, string what)
    {
        if (!condition)
        {
            Assert.Fail($"{what}\nhistory: {string.Join(", ", _log)}\ncopy 0: {_copies[0]}\ncopy 1: {_copies[1]}");
        }
    }

    private sealed class Copy
    {
        public GenerationIds Ids;
        public DiskState Disk = DiskState.UpToDate;
        public bool Primary;
        public bool CrashedPrimary;

        /// <summary>The current id this copy last shared with its peer, persisted; 0 until they first do.</summary>
        public ulong LastShared;

        public int[] Data { get; } = new int[Blocks];

        /// <summary>The dirty bitmap, a bit per block.</summary>
        public ulong Bitmap;

        /// <summary>Ground truth: the acknowledged writes this copy's data reflects.</summary>
        public HashSet<int> Acked = [];

        public CopyView View => new(Ids, Disk, Primary, CrashedPrimary, (ulong)BitOperations.PopCount(Bitmap));

        public override string ToString() =>
            $"{View} data [{string.Join(' ', Data)}] acked {{{string.Join(' ', Acked.Order())}}}";
    }
}
