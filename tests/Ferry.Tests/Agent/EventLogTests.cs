using Ferry.Agent.Events;
using Microsoft.Extensions.Time.Testing;

namespace Ferry.Tests.Agent;

public sealed class EventLogTests : IDisposable
{
    private readonly TempDirectory _dir = new();
    private readonly FakeTimeProvider _time = new(DateTimeOffset.Parse("2026-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));

    private string LogPath => Path.Combine(_dir.Path, "events.jsonl");

    [Fact]
    public void Events_are_numbered_timed_and_filtered_by_vm()
    {
        using var log = new EventLog(LogPath, _time);
        log.Append("vm.created", "a", "created");
        _time.Advance(TimeSpan.FromSeconds(1));
        log.Append("vm.created", "b", "created");
        var onlyB = log.Query("b");
        Assert.Single(onlyB);
        Assert.Equal(2, onlyB[0].Sequence);
        Assert.Equal(_time.GetUtcNow(), onlyB[0].Time);
        Assert.Equal(2, log.Query(null).Count);
    }

    [Fact]
    public void The_log_survives_a_restart_and_a_torn_last_line()
    {
        using (var log = new EventLog(LogPath, _time))
        {
            log.Append("vm.created", "a", "created");
            log.Append("vm.started", "a", "started");
        }

        File.AppendAllText(LogPath, "{\"sequence\":3,\"ti");
        using var reopened = new EventLog(LogPath, _time);
        Assert.Equal(["vm.created", "vm.started"], reopened.Query(null).Select(e => e.Type));
        Assert.Equal(3, reopened.Append("vm.stopped", "a", "stopped").Sequence);
    }

    [Fact]
    public async Task Followers_get_the_past_then_new_events()
    {
        using var log = new EventLog(LogPath, _time);
        log.Append("vm.created", "a", "created");
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var seen = new List<string>();
        await using var follower = log.FollowAsync("a", cts.Token).GetAsyncEnumerator(cts.Token);
        Assert.True(await follower.MoveNextAsync());
        seen.Add(follower.Current.Type);
        log.Append("vm.created", "other", "ignored");
        log.Append("vm.started", "a", "started");
        Assert.True(await follower.MoveNextAsync());
        seen.Add(follower.Current.Type);
        Assert.Equal(["vm.created", "vm.started"], seen);
    }

    public void Dispose() => _dir.Dispose();
}
