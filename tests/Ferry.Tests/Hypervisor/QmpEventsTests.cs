using System.Text.Json;
using Ferry.Hypervisor;

namespace Ferry.Tests.Hypervisor;

public sealed class QmpEventsTests
{
    private static QmpEvent Event(string name, string data) => new(name, JsonDocument.Parse(data).RootElement.Clone(), DateTimeOffset.UnixEpoch);

    [Fact]
    public void A_full_disk_that_paused_the_guest_says_so_and_how_to_go_on()
    {
        var text = QmpEvents.DescribeIoError(Event("BLOCK_IO_ERROR",
            """{"device": "", "node-name": "disk0", "operation": "write", "action": "stop", "nospace": true, "reason": "No space left on device"}"""));
        Assert.Equal("a write on disk disk0 failed: no space left on the disk's storage; the guest is paused, and retries it when resumed (ferry vm resume) once there is room", text);
    }

    [Theory]
    [InlineData("""{"device": "virtio0", "operation": "read", "action": "report", "reason": "Input/output error"}""", "a read on disk virtio0 failed: Input/output error; the guest was told")]
    [InlineData("""{"operation": "write", "action": "ignore"}""", "a write on disk ? failed: I/O error; QEMU ignored it")]
    [InlineData("""[]""", "a request on disk ? failed: I/O error; QEMU ignored it")]
    public void Other_io_errors_and_odd_data_are_described_without_failing(string data, string expected) =>
        Assert.Equal(expected, QmpEvents.DescribeIoError(Event("BLOCK_IO_ERROR", data)));
}
