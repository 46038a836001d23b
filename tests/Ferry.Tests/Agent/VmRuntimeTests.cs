using Ferry.Agent.Vms;
using Ferry.Hypervisor;

namespace Ferry.Tests.Agent;

public sealed class VmRuntimeTests
{
    [Fact]
    public void The_same_disk_error_is_reported_once_a_minute_and_a_different_one_at_once()
    {
        var runtime = new VmRuntime(VmState.Running);
        var t = DateTimeOffset.UnixEpoch;
        Assert.True(runtime.IsNewIoError("full", t));
        Assert.False(runtime.IsNewIoError("full", t.AddSeconds(1)));
        Assert.False(runtime.IsNewIoError("full", t.AddSeconds(59)));
        Assert.True(runtime.IsNewIoError("other", t.AddSeconds(59)));
        Assert.True(runtime.IsNewIoError("full", t.AddSeconds(60)));
        Assert.True(runtime.IsNewIoError("full", t.AddSeconds(120)));
    }
}
