using Ferry.Storage.Replication;
using Ferry.Storage.Replication.Wire;
using Ferry.Storage.Volumes;

namespace Ferry.Tests.ReplicationWire;

public class CopyViewFromHelloTests
{
    [Fact]
    public void A_hello_gives_the_peers_view_for_the_sync_decision()
    {
        var ids = new GenerationIds(4, 3, 2, 1);
        var hello = new HelloFrame(Guid.NewGuid(), 4096, ids, 9, 17, DiskState.Outdated, CopyRole.Primary, ReplicationProtocol.C, CrashedPrimary: true, Host: "h1");
        Assert.Equal(new CopyView(ids, DiskState.Outdated, Primary: true, CrashedPrimary: true, DirtyBlocks: 17), CopyView.From(hello));
    }
}
