using System.Buffers;
using System.Text.Json;
using DotNext.IO;
using DotNext.Net.Cluster.Consensus.Raft.StateMachine;
using Ferry.Cluster.State;

namespace Ferry.Cluster.Consensus;

/// <summary>
/// The replicated log's state machine: applies each committed command to the cluster state and keeps
/// a snapshot every <see cref="SnapshotEvery"/> entries and at each <see cref="CompactLog"/>, after which
/// the log drops what it covers.
/// </summary>
internal sealed class ClusterStateStore(DirectoryInfo snapshots) : SimpleStateMachine(snapshots)
{
    public const int SnapshotEvery = 256;

    private ClusterState _current = ClusterState.Empty;

    /// <summary>The state after the last applied command; a whole, immutable value.</summary>
    public ClusterState Current => Volatile.Read(ref _current);

    /// <summary>Raised after each applied command (on the applying thread), and after a snapshot was installed.</summary>
    public event Action<ClusterState>? Changed;

    protected override ValueTask<bool> ApplyAsync(LogEntry entry, CancellationToken token)
    {
        // A new leader's no-op and membership entries carry no payload.
        if (!entry.TryGetPayload(out var payload) || payload.IsEmpty)
        {
            return ValueTask.FromResult(false);
        }

        var command = Read(payload);
        var (next, _) = ClusterStateMachine.Apply(Current, command);
        Publish(next);
        return ValueTask.FromResult(command is CompactLog || entry.Index % SnapshotEvery == 0);
    }

    protected override ValueTask PersistAsync(IAsyncBinaryWriter writer, CancellationToken token) =>
        writer.Invoke(JsonSerializer.SerializeToUtf8Bytes(Current, FerryJson.Options), token);

    protected override async ValueTask RestoreAsync(FileInfo snapshotFile, CancellationToken token)
    {
        var bytes = await File.ReadAllBytesAsync(snapshotFile.FullName, token).ConfigureAwait(false);
        Publish(bytes.Length == 0 ? ClusterState.Empty : JsonSerializer.Deserialize<ClusterState>(bytes, FerryJson.Options) ?? ClusterState.Empty);
    }

    private static ClusterCommand Read(ReadOnlySequence<byte> payload)
    {
        var reader = new Utf8JsonReader(payload);

        // Entries were written by a leader of this cluster; one that does not parse is a bug or a corrupt log, never input to skip.
        return JsonSerializer.Deserialize<ClusterCommand>(ref reader, FerryJson.Options)
            ?? throw new InvalidDataException("a committed log entry holds no command");
    }

    private void Publish(ClusterState state)
    {
        Volatile.Write(ref _current, state);
        Changed?.Invoke(state);
    }
}
