namespace Ferry.Core;

/// <summary>
/// Keeps a message that repeats from flooding a log or an event list: the first of a run of equal messages
/// passes, then one per <paramref name="window"/>; a different message passes at once.
/// </summary>
public sealed class RepeatFilter(TimeSpan window)
{
    private readonly Lock _lock = new();
    private string? _last;
    private DateTimeOffset _passedAt;

    public bool Passes(string message, DateTimeOffset now)
    {
        lock (_lock)
        {
            if (message == _last && now - _passedAt < window)
            {
                return false;
            }

            _last = message;
            _passedAt = now;
            return true;
        }
    }

    /// <summary>Forgets the last message (after things went well again), so that its next failure passes.</summary>
    public void Reset()
    {
        lock (_lock)
        {
            _last = null;
        }
    }
}
