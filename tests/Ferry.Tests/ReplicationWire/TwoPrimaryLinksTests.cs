using Ferry.Storage.Replication;
using Ferry.Storage.Replication.Wire;
using Ferry.Storage.Volumes;

namespace Ferry.Tests.ReplicationWire;

/// <summary>
/// A secondary followed by two primaries at once, as the third copy of a volume during a migration's
/// handoff: which second link it takes beside the first, which it refuses, and which replace the first.
/// </summary>
public sealed class TwoPrimaryLinksTests : IAsyncLifetime, IDisposable
{
    private const long Size = 1 << 20;

    private readonly TempDirectory _dir = new();
    private readonly List<ReplicaLink> _links = [];
    private VolumeStore _store = null!;
    private Volume _volume = null!;
    private ReplicatedVolume _copy = null!;

    public async Task InitializeAsync()
    {
        (_store, _volume, _copy) = await TestReplication.OpenSecondaryAsync(_dir.Path, Size);
    }

    public async Task DisposeAsync()
    {
        foreach (var link in _links)
        {
            link.Close();
        }

        await _copy.DisposeAsync();
        _store.Dispose();
    }

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task A_second_primary_at_the_same_epoch_is_taken_beside_the_first_and_both_write()
    {
        var source = await ConnectedAsync("h1", epoch: 5);
        var target = await ConnectedAsync("h2", epoch: 5);

        await source.WriteAsync(1, 5, 0, 0x11);
        await target.WriteAsync(1, 5, 4096, 0x22);
        Assert.Equal(new AckFrame(1, AckKind.Written, AckStatus.Ok), (await source.ReceiveAsync()).Ack);
        Assert.Equal(new AckFrame(1, AckKind.Written, AckStatus.Ok), (await target.ReceiveAsync()).Ack);
        Assert.All(await ReadAsync(0, 4096), b => Assert.Equal(0x11, b));
        Assert.All(await ReadAsync(4096, 4096), b => Assert.Equal(0x22, b));

        var state = _copy.CopyState();
        Assert.StartsWith("h1 ", state.Incoming!.From, StringComparison.Ordinal);
        Assert.StartsWith("h2 ", state.SecondIncoming!.From, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Once_the_second_primary_takes_a_new_epoch_the_first_is_refused()
    {
        var source = await ConnectedAsync("h1", epoch: 5);
        var target = await ConnectedAsync("h2", epoch: 5);

        await target.WriteAsync(1, 6, 0, 0x22);
        Assert.Equal(AckStatus.Ok, (await target.ReceiveAsync()).Ack.Status);
        await source.WriteAsync(1, 5, 0, 0x11);
        Assert.Equal((uint)LinkErrorCode.StaleEpoch, (await source.ReceiveAsync()).ErrorCode);
        Assert.Equal(LinkErrorCode.StaleEpoch, (await source.EndedAsync()).Error);
        Assert.All(await ReadAsync(0, 4096), b => Assert.Equal(0x22, b));
        Assert.Null(_copy.CopyState().SecondIncoming);
    }

    [Fact]
    public async Task A_second_primary_never_resyncs_the_copy()
    {
        var source = await ConnectedAsync("h1", epoch: 5);
        var target = await ConnectedAsync("h2", epoch: 5);

        await target.SendAsync(w => LinkFrameWriter.WriteSync(w, new SyncFrame(1, 5, new GenerationIds(0x77, 0x78, 0, 0), Full: true), end: false));
        Assert.Equal((uint)LinkErrorCode.CannotSync, (await target.ReceiveAsync()).ErrorCode);
        Assert.Equal(DiskState.UpToDate, _volume.Metadata.Current.Disk);

        await source.WriteAsync(1, 5, 0, 0x11);
        Assert.Equal(AckStatus.Ok, (await source.ReceiveAsync()).Ack.Status);
    }

    [Fact]
    public async Task A_second_primary_waits_while_the_copy_resyncs_from_the_first()
    {
        var source = await ConnectedAsync("h1", epoch: 5);
        var ids = _volume.Metadata.Current.Generations;
        await source.SendAsync(w => LinkFrameWriter.WriteSync(w, new SyncFrame(1, 5, ids with { Bitmap = 0x99 }, Full: false), end: false));
        Assert.Equal(AckStatus.Ok, (await source.ReceiveAsync()).Ack.Status);

        var target = await ConnectAsync("h2", epoch: 5);
        Assert.Equal((uint)LinkErrorCode.RoleConflict, (await target.ReceiveAsync()).ErrorCode);
        Assert.Equal(ConnectionState.SyncTarget, _copy.CopyState().Incoming!.Connection);
    }

    [Fact]
    public async Task The_same_host_again_or_a_newer_primary_replaces_the_links_it_had()
    {
        var first = await ConnectedAsync("h1", epoch: 5);
        var again = await ConnectedAsync("h1", epoch: 5);
        Assert.Equal(LinkErrorCode.ShuttingDown, (await first.EndedAsync()).Error);

        var second = await ConnectedAsync("h2", epoch: 5);
        await ConnectedAsync("h3", epoch: 6);
        Assert.Equal(LinkErrorCode.ShuttingDown, (await again.EndedAsync()).Error);
        Assert.Equal(LinkErrorCode.ShuttingDown, (await second.EndedAsync()).Error);
        Assert.StartsWith("h3 ", _copy.CopyState().Incoming!.From, StringComparison.Ordinal);
        Assert.Null(_copy.CopyState().SecondIncoming);
    }

    [Fact]
    public async Task A_third_primary_is_refused()
    {
        await ConnectedAsync("h1", epoch: 5);
        await ConnectedAsync("h2", epoch: 5);
        var h3 = await ConnectAsync("h3", epoch: 5);
        Assert.Equal((uint)LinkErrorCode.RoleConflict, (await h3.ReceiveAsync()).ErrorCode);
        Assert.Equal(ConnectionState.Connected, _copy.CopyState().Incoming!.Connection);
        Assert.NotNull(_copy.CopyState().SecondIncoming);
    }

    private async Task<ReplicaLink> ConnectAsync(string host, ulong epoch)
    {
        var link = new ReplicaLink(_copy);
        _links.Add(link);
        var ids = _volume.Metadata.Current.Generations;
        await link.SendAsync(w => LinkFrameWriter.WriteHello(w, new HelloFrame(
            _copy.VolumeId, Size, ids, epoch, 0, DiskState.UpToDate, CopyRole.Primary, ReplicationProtocol.C, false, host)));
        return link;
    }

    /// <summary>A link the copy took: it answered the Hello with its own.</summary>
    private async Task<ReplicaLink> ConnectedAsync(string host, ulong epoch)
    {
        var link = await ConnectAsync(host, epoch);
        Assert.Equal(LinkFrameType.Hello, (await link.ReceiveAsync()).Header.Type);
        return link;
    }

    private async Task<byte[]> ReadAsync(long offset, int length)
    {
        var data = new byte[length];
        await _volume.ReadAsync(offset, data, default);
        return data;
    }
}
