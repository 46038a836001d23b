using System.Text.Json;
using System.Threading.Channels;

namespace Ferry.Agent.Events;

/// <summary>
/// The host's event log: appended to events.jsonl in the data directory, the newest events kept in
/// memory for queries, and pushed to followers (ferry vm events --follow).
/// </summary>
public sealed class EventLog : IDisposable
{
    private const int RetainedInMemory = 4096;

    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private readonly LinkedList<FerryEvent> _recent = new();
    private readonly List<Channel<FerryEvent>> _followers = [];
    private readonly FileStream _file;
    private long _sequence;

    public EventLog(string path, TimeProvider time)
    {
        _time = time;
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        foreach (var e in ReadExisting(path))
        {
            Remember(e);
            _sequence = e.Sequence;
        }

        _file = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read);
    }

    public FerryEvent Append(string type, string? vm, string message)
    {
        lock (_lock)
        {
            var e = new FerryEvent(++_sequence, _time.GetUtcNow(), type, vm, message);
            var line = JsonSerializer.SerializeToUtf8Bytes(e, FerryJson.Options);
            _file.Write(line);
            _file.WriteByte((byte)'\n');
            _file.Flush();
            Remember(e);
            foreach (var follower in _followers)
            {
                follower.Writer.TryWrite(e);
            }

            return e;
        }
    }

    public IReadOnlyList<FerryEvent> Query(string? vm, long afterSequence = 0)
    {
        lock (_lock)
        {
            return [.. _recent.Where(e => e.Sequence > afterSequence && (vm is null || e.Vm == vm))];
        }
    }

    /// <summary>Past events (for the given VM, if any), then every new one until cancelled.</summary>
    public async IAsyncEnumerable<FerryEvent> FollowAsync(string? vm, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        var channel = Channel.CreateBounded<FerryEvent>(new BoundedChannelOptions(RetainedInMemory) { FullMode = BoundedChannelFullMode.DropOldest });
        IReadOnlyList<FerryEvent> past;
        lock (_lock)
        {
            past = Query(vm);
            _followers.Add(channel);
        }

        try
        {
            foreach (var e in past)
            {
                yield return e;
            }

            await foreach (var e in channel.Reader.ReadAllAsync(ct).ConfigureAwait(false))
            {
                if (vm is null || e.Vm == vm)
                {
                    yield return e;
                }
            }
        }
        finally
        {
            lock (_lock)
            {
                _followers.Remove(channel);
            }
        }
    }

    private void Remember(FerryEvent e)
    {
        _recent.AddLast(e);
        if (_recent.Count > RetainedInMemory)
        {
            _recent.RemoveFirst();
        }
    }

    private static IEnumerable<FerryEvent> ReadExisting(string path)
    {
        if (!File.Exists(path))
        {
            yield break;
        }

        foreach (var line in File.ReadLines(path))
        {
            FerryEvent? e;
            try
            {
                e = JsonSerializer.Deserialize<FerryEvent>(line, FerryJson.Options);
            }
            catch (JsonException)
            {
                // A line torn by a crash while it was appended; the events before it are intact.
                continue;
            }

            if (e is not null)
            {
                yield return e;
            }
        }
    }

    public void Dispose() => _file.Dispose();
}
