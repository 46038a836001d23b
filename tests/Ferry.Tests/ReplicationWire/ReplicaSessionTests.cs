using System.Buffers;
using Ferry.Storage.Replication;
using Ferry.Storage.Replication.Wire;
using Ferry.Storage.Volumes;
using Microsoft.Extensions.Logging.Abstractions;

namespace Ferry.Tests.ReplicationWire;

/// <summary>The secondary's side of the link, driven frame by frame through in-memory pipes.</summary>
public sealed class ReplicaSessionTests : IAsyncLifetime, IDisposable
{
    private const long Size = 1 << 20;

    private readonly TempDirectory _dir = new();
    private VolumeStore _store = null!;
    private Volume _volume = null!;
    private ReplicatedVolume _copy = null!;
    private ReplicaLink _link = null!;

    public async Task InitializeAsync()
    {
        (_store, _volume, _copy) = await TestReplication.OpenSecondaryAsync(_dir.Path, Size);
        _link = new ReplicaLink(_copy);
    }

    public async Task DisposeAsync()
    {
        await _copy.DisposeAsync();
        _store.Dispose();
    }

    public void Dispose() => _dir.Dispose();

    private HelloFrame PrimaryHello(ulong epoch = 5, long size = Size, Guid? id = null, string host = "primary") =>
        new(id ?? _volume.Metadata.Current.VolumeId, size, _volume.Metadata.Current.Generations, epoch, 0, DiskState.UpToDate, CopyRole.Primary, ReplicationProtocol.C, false, host);

    private Task SendAsync(Action<IBufferWriter<byte>> write) => _link.SendAsync(write);

    private Task SendWriteAsync(ulong sequence, ulong epoch, long offset, byte value, int length = 4096) => _link.WriteAsync(sequence, epoch, offset, value, length);

    private Task<LinkFrame> ReceiveAsync() => _link.ReceiveAsync();

    private async Task<byte[]> ReadVolumeAsync(long offset, int length)
    {
        var data = new byte[length];
        await _volume.ReadAsync(offset, data, default);
        return data;
    }

    private Task<ReplicaSessionEnd> EndedAsync() => _link.EndedAsync();

    [Fact]
    public async Task Writes_zeroes_and_flushes_are_applied_in_order_and_acknowledged()
    {
        await SendAsync(w => LinkFrameWriter.WriteHello(w, PrimaryHello()));
        var hello = (await ReceiveAsync()).Hello;
        Assert.Equal(CopyRole.Secondary, hello.Role);
        Assert.Equal(5UL, hello.Epoch);

        await SendWriteAsync(1, 5, 8192, 0xAB);
        await SendAsync(w => LinkFrameWriter.WriteZero(w, new ZeroFrame(2, 5, 8192, 1024, Fua: false, MayTrim: false)));
        await SendAsync(w => LinkFrameWriter.WriteFlush(w, new FlushFrame(3, 5)));
        Assert.Equal(new AckFrame(1, AckKind.Written, AckStatus.Ok), (await ReceiveAsync()).Ack);
        Assert.Equal(new AckFrame(2, AckKind.Written, AckStatus.Ok), (await ReceiveAsync()).Ack);
        Assert.Equal(new AckFrame(3, AckKind.Written, AckStatus.Ok), (await ReceiveAsync()).Ack);

        var data = await ReadVolumeAsync(8192, 4096);
        Assert.All(data[..1024], b => Assert.Equal(0, b));
        Assert.All(data[1024..], b => Assert.Equal(0xAB, b));

        _link.Output.Complete();
        Assert.Null((await EndedAsync()).Error);
    }

    [Fact]
    public async Task A_newer_epoch_is_recorded_durably_before_its_write()
    {
        await SendAsync(w => LinkFrameWriter.WriteHello(w, PrimaryHello(epoch: 6)));
        await ReceiveAsync();
        await SendWriteAsync(1, 7, 0, 0x11);
        Assert.Equal(AckStatus.Ok, (await ReceiveAsync()).Ack.Status);
        Assert.Equal(7UL, _volume.Metadata.Current.HighestEpoch);

        // On disk too: a reopened store reads the new epoch.
        _link.Output.Complete();
        await EndedAsync();
        await _copy.DisposeAsync();
        _store.Dispose();
        _store = VolumeStore.Open(_dir.Path, TimeProvider.System, NullLogger.Instance);
        Assert.Equal(7UL, (await _store.InfoAsync("vol", default)).Value.HighestEpoch);
    }

    [Fact]
    public async Task A_stale_primarys_write_is_refused_and_nothing_is_written()
    {
        await SendAsync(w => LinkFrameWriter.WriteHello(w, PrimaryHello()));
        await ReceiveAsync();
        await SendWriteAsync(1, 4, 0, 0x66);
        var error = await ReceiveAsync();
        Assert.Equal(LinkFrameType.Error, error.Header.Type);
        Assert.Equal((uint)LinkErrorCode.StaleEpoch, error.ErrorCode);
        Assert.Equal(LinkErrorCode.StaleEpoch, (await EndedAsync()).Error);
        Assert.All(await ReadVolumeAsync(0, 4096), b => Assert.Equal(0, b));
        Assert.Equal(5UL, _volume.Metadata.Current.HighestEpoch);
    }

    [Fact]
    public async Task A_stale_primary_is_refused_at_hello()
    {
        await SendAsync(w => LinkFrameWriter.WriteHello(w, PrimaryHello(epoch: 4)));
        Assert.Equal((uint)LinkErrorCode.StaleEpoch, (await ReceiveAsync()).ErrorCode);
        Assert.Equal(LinkErrorCode.StaleEpoch, (await EndedAsync()).Error);
    }

    [Fact]
    public async Task The_wrong_volume_or_size_is_refused_at_hello()
    {
        await SendAsync(w => LinkFrameWriter.WriteHello(w, PrimaryHello(id: Guid.NewGuid())));
        Assert.Equal((uint)LinkErrorCode.WrongVolume, (await ReceiveAsync()).ErrorCode);
        Assert.Equal(LinkErrorCode.WrongVolume, (await EndedAsync()).Error);
    }

    [Fact]
    public async Task The_wrong_size_is_refused_at_hello()
    {
        await SendAsync(w => LinkFrameWriter.WriteHello(w, PrimaryHello(size: Size * 2)));
        Assert.Equal((uint)LinkErrorCode.WrongSize, (await ReceiveAsync()).ErrorCode);
    }

    [Fact]
    public async Task Garbage_ends_the_link_with_an_error_and_writes_nothing()
    {
        await SendAsync(w => LinkFrameWriter.WriteHello(w, PrimaryHello()));
        await ReceiveAsync();
        await SendAsync(w => { w.GetSpan(64)[..64].Fill(0x5A); w.Advance(64); });
        Assert.Equal((uint)LinkErrorCode.ProtocolViolation, (await ReceiveAsync()).ErrorCode);
        Assert.Equal(LinkErrorCode.ProtocolViolation, (await EndedAsync()).Error);
        Assert.Equal(0, (await _store.InfoAsync("vol", default)).Value.Allocated);
    }

    [Fact]
    public async Task A_write_past_the_end_is_refused_and_the_link_stays_up()
    {
        await SendAsync(w => LinkFrameWriter.WriteHello(w, PrimaryHello()));
        await ReceiveAsync();
        await SendWriteAsync(1, 5, Size - 1024, 0x22);
        Assert.Equal(AckStatus.Invalid, (await ReceiveAsync()).Ack.Status);
        await SendWriteAsync(2, 5, 0, 0x33);
        Assert.Equal(AckStatus.Ok, (await ReceiveAsync()).Ack.Status);
        Assert.All(await ReadVolumeAsync(Size - 1024, 1024), b => Assert.Equal(0, b));
    }

    [Fact]
    public async Task Data_before_hello_is_a_protocol_violation()
    {
        await SendWriteAsync(1, 5, 0, 0x44);
        Assert.Equal((uint)LinkErrorCode.ProtocolViolation, (await ReceiveAsync()).ErrorCode);
        Assert.All(await ReadVolumeAsync(0, 4096), b => Assert.Equal(0, b));
    }
    [Fact]
    public async Task A_write_arriving_in_pieces_is_written_whole_and_acknowledged_once()
    {
        await SendAsync(w => LinkFrameWriter.WriteHello(w, PrimaryHello()));
        await ReceiveAsync();
        const int Length = 100 * 1024;
        LinkFrameWriter.WriteWrite(_link.Output, new WriteFrame(1, 5, 4096, Length, Fua: true));
        await _link.Output.FlushAsync();
        for (var piece = 0; piece < 4; piece++)
        {
            await SendAsync(w => { w.GetSpan(Length / 4)[..(Length / 4)].Fill((byte)(0x10 + piece)); w.Advance(Length / 4); });
            await Task.Delay(20);
        }

        Assert.Equal(new AckFrame(1, AckKind.Written, AckStatus.Ok), (await ReceiveAsync()).Ack);
        var data = await ReadVolumeAsync(4096, Length);
        for (var piece = 0; piece < 4; piece++)
        {
            Assert.All(data.AsSpan(piece * (Length / 4), Length / 4).ToArray(), b => Assert.Equal(0x10 + piece, b));
        }
    }

    [Fact]
    public async Task A_write_arriving_more_slowly_than_the_idle_timeout_keeps_the_link()
    {
        var link = new ReplicaLink(_copy, idleTimeout: TimeSpan.FromSeconds(1.5));
        await link.SendAsync(w => LinkFrameWriter.WriteHello(w, PrimaryHello()));
        await link.ReceiveAsync();
        const int Pieces = 8;
        const int Length = Pieces * 16 * 1024; // each piece less than the copy gathers before it writes
        LinkFrameWriter.WriteWrite(link.Output, new WriteFrame(1, 5, 0, Length, Fua: false));
        await link.Output.FlushAsync();
        for (var piece = 0; piece < Pieces; piece++)
        {
            await Task.Delay(300); // 2.4 s for the whole write, no frame in between
            await link.SendAsync(w => { w.GetSpan(Length / Pieces)[..(Length / Pieces)].Fill(0x42); w.Advance(Length / Pieces); });
        }

        Assert.Equal(new AckFrame(1, AckKind.Written, AckStatus.Ok), (await link.ReceiveAsync()).Ack);
        Assert.All(await ReadVolumeAsync(0, Length), b => Assert.Equal(0x42, b));

        // Silence, on the other hand, ends the link.
        Assert.Equal("the primary sent nothing for 1.5 s", (await link.EndedAsync()).Reason);
    }

    [Fact]
    public async Task Checksums_are_answered_per_4_KiB_block_and_a_range_past_the_end_ends_the_link()
    {
        await SendAsync(w => LinkFrameWriter.WriteHello(w, PrimaryHello()));
        await ReceiveAsync();
        await SendWriteAsync(1, 5, 4096, 0x77);
        await SendAsync(w => LinkFrameWriter.WriteChecksumRequest(w, new ChecksumRequestFrame(2, 5, 0, 3 * 4096)));
        Assert.Equal(AckStatus.Ok, (await ReceiveAsync()).Ack.Status);

        var answer = await ReceiveAsync();
        Assert.Equal(LinkFrameType.Checksums, answer.Header.Type);
        Assert.Equal(new ChecksumsFrame(2, 3 * 8), answer.Checksums);
        var result = await _link.Input.ReadAtLeastAsync(24);
        var checksums = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ulong>(result.Buffer.Slice(0, 24).ToArray()).ToArray();
        _link.Input.AdvanceTo(result.Buffer.GetPosition(24));
        var zeros = System.IO.Hashing.XxHash3.HashToUInt64(new byte[4096]);
        var written = System.IO.Hashing.XxHash3.HashToUInt64(Enumerable.Repeat((byte)0x77, 4096).ToArray());
        Assert.Equal([zeros, written, zeros], checksums);

        await SendAsync(w => LinkFrameWriter.WriteChecksumRequest(w, new ChecksumRequestFrame(3, 5, Size - 4096, 8192)));
        Assert.Equal((uint)LinkErrorCode.ProtocolViolation, (await ReceiveAsync()).ErrorCode);
    }
}
