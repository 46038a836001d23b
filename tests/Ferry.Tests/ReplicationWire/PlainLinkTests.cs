using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Ferry.Storage;
using Ferry.Storage.Replication;
using Ferry.Storage.Replication.Wire;
using Ferry.Storage.Volumes;
using Microsoft.Extensions.Logging.Abstractions;

namespace Ferry.Tests.ReplicationWire;

/// <summary>A plain TCP link on real sockets and files: data spliced into the copy's file, a failed write, the blocking stream, the receiver thread, the primary sending from its file.</summary>
public sealed class PlainLinkTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Data_spliced_from_a_socket_lands_in_the_file_at_its_offset()
    {
        var data = new byte[(3 << 20) + 12345];
        Random.Shared.NextBytes(data);
        var path = Path.Combine(_dir.Path, "disk.img");
        await using (var file = File.Create(path))
        {
            file.SetLength(8 << 20);
        }

        using var device = FileBlockDevice.Open(path, readOnly: false);
        var (sender, receiver) = await ConnectedPairAsync();
        using (sender)
        using (receiver)
        using (var splice = LinkSplice.TryCreate(receiver))
        {
            Assert.NotNull(splice);
            // The first fill waits: nothing has been sent yet.
            var sending = Task.Delay(100).ContinueWith(_ => sender.SendAsync(data, SocketFlags.None), TaskScheduler.Default).Unwrap();
            long at = 4096;
            var left = data.Length;
            while (left > 0)
            {
                var moved = splice.Fill(Math.Min(left, SplicePipe.Capacity));
                Assert.True(moved > 0);
                device.WriteFrom(splice.Pipe, at, moved);
                Assert.Equal(0, splice.Pipe.Held);
                at += moved;
                left -= moved;
            }

            await sending;

            // A waiting fill raises the socket's low-water mark; a small message after it must still be read.
            await Task.Delay(50);
            var reading = receiver.ReceiveAsync(new byte[8], SocketFlags.None);
            await sender.SendAsync(new byte[] { 7 }, SocketFlags.None);
            Assert.Equal(1, await reading.WaitAsync(TimeSpan.FromSeconds(10)));
            sender.Shutdown(SocketShutdown.Send);
            Assert.Equal(0, splice.Fill(SplicePipe.Capacity)); // the end of the stream
        }

        var written = new byte[data.Length];
        device.Read(4096, written);
        Assert.Equal(data, written);
        var before = new byte[4096];
        device.Read(0, before);
        Assert.All(before, b => Assert.Equal(0, b));
    }

    [Fact]
    public async Task A_failed_write_reports_no_space_and_the_rest_can_be_dropped()
    {
        using var full = FileBlockDevice.Open("/dev/full", readOnly: false);
        var (sender, receiver) = await ConnectedPairAsync();
        using (sender)
        using (receiver)
        using (var splice = LinkSplice.TryCreate(receiver))
        {
            Assert.NotNull(splice);
            await sender.SendAsync(new byte[1 << 20], SocketFlags.None);
            var moved = 0;
            while (moved < 1 << 20)
            {
                moved += splice.Fill(SplicePipe.Capacity);
            }

            var e = Assert.Throws<BlockDeviceException>(() => full.WriteFrom(splice.Pipe, 0, moved));
            Assert.Equal(BlockError.NoSpace, e.Error);
            Assert.True(splice.Pipe.Held > 0);

            splice.Pipe.Drop();
            Assert.Equal(0, splice.Pipe.Held);

            // The link is still in step: what comes next is read as it was sent.
            await sender.SendAsync(new byte[] { 1, 2, 3 }, SocketFlags.None);
            var next = new byte[3];
            Assert.Equal(3, await receiver.ReceiveAsync(next, SocketFlags.None));
            Assert.Equal(new byte[] { 1, 2, 3 }, next);
        }
    }

    [Fact]
    public async Task A_blocking_splice_waits_in_the_kernel_for_data_and_a_shut_down_socket_wakes_it()
    {
        var (sender, receiver) = await ConnectedPairAsync();
        using (sender)
        using (receiver)
        using (var splice = LinkSplice.TryCreate(receiver))
        {
            Assert.NotNull(splice);
            var filling = Task.Run(() => splice.Fill(64 << 10));
            await Task.Delay(100);
            Assert.False(filling.IsCompleted);
            await sender.SendAsync(new byte[64 << 10], SocketFlags.None);
            var moved = await filling.WaitAsync(TimeSpan.FromSeconds(10));
            Assert.InRange(moved, 1, 64 << 10);
            splice.Pipe.Drop();

            var waiting = Task.Run(() => splice.Fill(1 << 20));
            await Task.Delay(100);
            receiver.Shutdown(SocketShutdown.Receive);
            Assert.Equal(0, await waiting.WaitAsync(TimeSpan.FromSeconds(10)));
        }
    }

    [Fact]
    public async Task A_blocking_link_stream_reads_and_writes_a_socket_and_reports_a_broken_one_as_an_IOException()
    {
        var (sender, receiver) = await ConnectedPairAsync();
        using (sender)
        using (receiver)
        {
            using var stream = new BlockingLinkStream(receiver);
            await sender.SendAsync(new byte[] { 1, 2, 3 }, SocketFlags.None);
            var read = new byte[3];
            var got = stream.ReadAsync(read);
            Assert.True(got.IsCompleted); // a blocking read is done when it returns
            Assert.Equal(3, await got);
            await stream.WriteAsync(new byte[] { 4 });
            var back = new byte[1];
            Assert.Equal(1, await sender.ReceiveAsync(back, SocketFlags.None));
            Assert.Equal(4, back[0]);

            sender.LingerState = new LingerOption(true, 0); // a reset, not an orderly close
            sender.Close();
            await Task.Delay(100);
            Assert.Throws<IOException>(() => stream.Write(new byte[1 << 20]));
        }
    }

    [Fact]
    public async Task The_receiver_thread_runs_a_session_and_its_continuations_on_one_thread()
    {
        var threads = new List<int>();
        var result = await LinkReceiver.RunAsync("test receiver", async () =>
        {
            threads.Add(Environment.CurrentManagedThreadId);
            await Task.Delay(20).ConfigureAwait(true);
            threads.Add(Environment.CurrentManagedThreadId);
            await Task.Yield();
            threads.Add(Environment.CurrentManagedThreadId);
            return 42;
        });

        Assert.Equal(42, result);
        Assert.Single(threads.Distinct());
        Assert.NotEqual(Environment.CurrentManagedThreadId, threads[0]);
    }

    [Fact]
    public async Task Large_writes_a_primary_sends_from_its_file_reach_the_copy_whole_when_the_link_is_full()
    {
        const long Size = 16 << 20;
        using var storeA = VolumeStore.Open(Path.Combine(_dir.Path, "a"), TimeProvider.System, NullLogger.Instance);
        await storeA.CreateAsync("vol", Size, default);
        storeA.TryGet("vol", out var volumeA);
        using var storeB = VolumeStore.Open(Path.Combine(_dir.Path, "b"), TimeProvider.System, NullLogger.Instance);
        await storeB.CreateAsync("vol", Size, default, copyOf: volumeA!.Metadata.Current.VolumeId);
        storeB.TryGet("vol", out var volumeB);
        await using var copyB = ReplicatedVolume.Open(volumeB!, new ReplicationSettings { Role = CopyRole.Secondary }, TestReplication.Context());

        // Socket buffers of a few KiB on both ends: sendfile keeps finding the link full.
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        using var stop = new CancellationTokenSource();
        var serving = ServeOnePlainLinkAsync(listener, copyB, stop.Token);
        var context = TestReplication.Context(async (_, ct) =>
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true, SendBufferSize = 8 << 10 };
            await socket.ConnectAsync((IPEndPoint)listener.LocalEndpoint, ct);
            return new NetworkStream(socket, ownsSocket: true);
        });
        var settings = new ReplicationSettings { Role = CopyRole.Primary, Peers = [new PeerAddress("b", listener.LocalEndpoint.ToString()!)] };
        var data = new byte[12 << 20];
        Random.Shared.NextBytes(data);
        await using (var copyA = ReplicatedVolume.Open(volumeA, settings, context))
        {
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (copyA.CopyState().Connection != ConnectionState.Connected)
            {
                Assert.True(DateTime.UtcNow < deadline, $"the copy is not in sync: {copyA.CopyState().Connection}");
                await Task.Delay(20);
            }

            // Writes of 4 MiB and 100 KiB at odd offsets, several in flight, then one over their ranges.
            await Task.WhenAll(
                copyA.WriteAsync(4096, data.AsMemory(0, 4 << 20), fua: false, default).AsTask(),
                copyA.WriteAsync((4 << 20) + 8192, data.AsMemory(4 << 20, 4 << 20), fua: true, default).AsTask(),
                copyA.WriteAsync(9 << 20, data.AsMemory(8 << 20, 100 << 10), fua: false, default).AsTask());
            await copyA.WriteAsync(12345 * 512, data.AsMemory(9 << 20, 3 << 20), fua: false, default);
            Assert.True(copyA.CopyState().Connection == ConnectionState.Connected, $"{copyA.CopyState().Peers[0]}; the copy: {(serving.IsCompleted ? (await serving).Reason : "serving")}");
        }

        await stop.CancelAsync();
        await serving;
        var onA = await File.ReadAllBytesAsync(volumeA.DataPath);
        Assert.Equal(onA, await File.ReadAllBytesAsync(volumeB!.DataPath));
        Assert.Equal(data.AsSpan(9 << 20, 3 << 20).ToArray(), onA.AsSpan(12345 * 512, 3 << 20).ToArray());
    }

    /// <summary>The copy's side of one plain link, as the agent serves it: read on a thread of its own, large writes spliced.</summary>
    private static async Task<ReplicaSessionEnd> ServeOnePlainLinkAsync(TcpListener listener, ReplicatedVolume copy, CancellationToken ct)
    {
        using var socket = await listener.AcceptSocketAsync(ct);
        var io = new BlockingLinkStream(socket);
        using var session = new ReplicaSession(
            id => id == copy.VolumeId ? copy : null, PipeReader.Create(io, LinkPipes.Reader), PipeWriter.Create(io, LinkPipes.Writer), "a",
            NullLogger.Instance, LinkSplice.TryCreate(socket), () => socket.Shutdown(SocketShutdown.Receive));
        return await LinkReceiver.RunAsync("replica a", () => session.RunAsync(ct));
    }

    private static async Task<(Socket Sender, Socket Receiver)> ConnectedPairAsync()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var sender = new Socket(SocketType.Stream, ProtocolType.Tcp);
        var accepting = listener.AcceptSocketAsync();
        await sender.ConnectAsync((IPEndPoint)listener.LocalEndpoint);
        return (sender, await accepting);
    }
}
