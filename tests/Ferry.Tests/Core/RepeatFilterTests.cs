using Ferry.Core;

namespace Ferry.Tests.Core;

public sealed class RepeatFilterTests
{
    [Fact]
    public void The_same_message_passes_once_a_window_a_different_one_at_once_and_again_after_a_reset()
    {
        var filter = new RepeatFilter(TimeSpan.FromMinutes(1));
        var t = DateTimeOffset.UnixEpoch;
        Assert.True(filter.Passes("full", t));
        Assert.False(filter.Passes("full", t.AddSeconds(1)));
        Assert.False(filter.Passes("full", t.AddSeconds(59)));
        Assert.True(filter.Passes("other", t.AddSeconds(59)));
        Assert.True(filter.Passes("full", t.AddSeconds(60)));
        Assert.False(filter.Passes("full", t.AddSeconds(61)));
        Assert.True(filter.Passes("full", t.AddSeconds(120)));
        filter.Reset();
        Assert.True(filter.Passes("full", t.AddSeconds(121)));
    }
}
