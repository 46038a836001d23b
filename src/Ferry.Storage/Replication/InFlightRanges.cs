namespace Ferry.Storage.Replication;

/// <summary>
/// The ranges of a primary's copy being written locally, or read for a peer, in the order they entered.
/// A range goes ahead only once no earlier range overlaps it, so overlapping changes reach this copy in
/// the order they were sent to the peers, and a resync block read for a peer holds every change sent
/// before it. Ranges that do not overlap (nearly all of them) do not wait for each other: local writes
/// run outside the ordering lock, side by side. Entering first means no later range can starve it.
/// </summary>
/// <remarks>Not thread-safe: the owner calls every member under its ordering lock.</remarks>
internal sealed class InFlightRanges
{
    private readonly List<Entry> _entries = [];
    private TaskCompletionSource? _exited;
    private long _lastId;

    private readonly record struct Entry(long Id, long Start, long End);

    public int Count => _entries.Count;

    /// <summary>Adds a range behind every range in flight; its id is then passed to the other members.</summary>
    public long Enter(long offset, long length)
    {
        var id = ++_lastId;
        _entries.Add(new Entry(id, offset, offset + length));
        return id;
    }

    /// <summary>Null when no earlier range overlaps <paramref name="id"/>'s; otherwise what to await before asking again.</summary>
    public Task? Blocker(long id)
    {
        var index = IndexOf(id);
        var self = _entries[index];
        for (var i = 0; i < index; i++)
        {
            var earlier = _entries[i];
            if (earlier.Start < self.End && self.Start < earlier.End)
            {
                return (_exited ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
            }
        }

        return null;
    }

    public void Exit(long id)
    {
        _entries.RemoveAt(IndexOf(id));
        if (_exited is { } waiting)
        {
            _exited = null;
            waiting.TrySetResult();
        }
    }

    private int IndexOf(long id)
    {
        // Entries are in id order, and the one asked for is usually among the oldest.
        for (var i = 0; i < _entries.Count; i++)
        {
            if (_entries[i].Id == id)
            {
                return i;
            }
        }

        throw new InvalidOperationException($"range {id} is not in flight");
    }
}
