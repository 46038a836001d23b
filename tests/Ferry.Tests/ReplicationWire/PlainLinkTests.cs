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
        // A send buffer of a few KiB: sendfile keeps finding the link full.
        await using var copies = await LinkedCopies.StartAsync(_dir.Path, sendBuffer: 8 << 10, bytesPerSecond: 0);
        var data = new byte[12 << 20];
        Random.Shared.NextBytes(data);

        // Writes of 4 MiB and 100 KiB at odd offsets, several in flight, then one over their ranges.
        var primary = copies.Primary;
        await Task.WhenAll(
            primary.WriteAsync(4096, data.AsMemory(0, 4 << 20), fua: false, default).AsTask(),
            primary.WriteAsync((4 << 20) + 8192, data.AsMemory(4 << 20, 4 << 20), fua: true, default).AsTask(),
            primary.WriteAsync(9 << 20, data.AsMemory(8 << 20, 100 << 10), fua: false, default).AsTask());
        await primary.WriteAsync(12345 * 512, data.AsMemory(9 << 20, 3 << 20), fua: false, default);

        var onA = await copies.AssertInStepAsync();
        Assert.Equal(data.AsSpan(9 << 20, 3 << 20).ToArray(), onA.AsSpan(12345 * 512, 3 << 20).ToArray());
    }

    [Fact]
    public async Task A_write_that_takes_a_slow_link_longer_than_the_dead_peer_time_keeps_the_link()
    {
        // 6 MiB at 2 MiB/s: 3 s without a frame either way, where 2 s of silence ends a link.
        await using var copies = await LinkedCopies.StartAsync(_dir.Path, sendBuffer: 0, bytesPerSecond: 2 << 20);
        var data = new byte[6 << 20];
        Random.Shared.NextBytes(data);
        var started = DateTime.UtcNow;
        await copies.Primary.WriteAsync(1 << 20, data, fua: true, default);

        Assert.True(DateTime.UtcNow - started > PeerLink.DeadAfter, $"the write took only {DateTime.UtcNow - started}: the link was not slow");
        var onA = await copies.AssertInStepAsync();
        Assert.Equal(data, onA.AsSpan(1 << 20, 6 << 20).ToArray());
    }

    [Fact]
    public async Task A_copy_that_stops_reading_is_judged_gone_though_its_kernel_still_acknowledges_pings()
    {
        await using var copies = await LinkedCopies.StartAsync(_dir.Path, sendBuffer: 0, bytesPerSecond: 64 << 20);
        await Task.Delay(1500); // pings only: a second and a half of them, acknowledged
        copies.Paused = true;

        // The write's 4 MiB fill what the relay holds, and then nothing more is acknowledged: the copy is
        // outdated (this test's authority grants it) and the write completes without it.
        var data = new byte[4 << 20];
        var started = DateTime.UtcNow;
        await copies.Primary.WriteAsync(0, data, fua: false, default).AsTask().WaitAsync(TimeSpan.FromSeconds(20));
        Assert.True(DateTime.UtcNow - started >= PeerLink.DeadAfter, "the write did not wait for the copy");
        var peer = copies.Primary.CopyState().Peers[0];
        Assert.NotEqual(ConnectionState.Connected, peer.Connection);
        Assert.True(peer.Outdated, peer.ToString());
    }

    /// <summary>
    /// A primary and its copy in this process, joined by a plain TCP link as the agent makes it (the copy's
    /// side read on a thread of its own, large writes spliced), optionally through a relay that passes the
    /// primary's bytes on at a given rate.
    /// </summary>
    private sealed class LinkedCopies : IAsyncDisposable
    {
        private const long Size = 16 << 20;
        private readonly List<IDisposable> _owned = [];
        private readonly CancellationTokenSource _stop = new();
        private readonly List<Task> _running = [];
        private Volume _volumeA = null!;
        private Volume _volumeB = null!;
        private ReplicatedVolume _copy = null!;
        private Task<ReplicaSessionEnd> _serving = null!;

        public ReplicatedVolume Primary { get; private set; } = null!;

        /// <summary>The relay stops passing the primary's bytes on (a copy that stopped reading, its kernel still there).</summary>
        public bool Paused { get; set; }

        public static async Task<LinkedCopies> StartAsync(string directory, int sendBuffer, int bytesPerSecond)
        {
            var copies = new LinkedCopies();
            var storeA = VolumeStore.Open(Path.Combine(directory, "a"), TimeProvider.System, NullLogger.Instance);
            var storeB = VolumeStore.Open(Path.Combine(directory, "b"), TimeProvider.System, NullLogger.Instance);
            copies._owned.AddRange([storeA, storeB]);
            await storeA.CreateAsync("vol", Size, default);
            storeA.TryGet("vol", out var volumeA);
            await storeB.CreateAsync("vol", Size, default, copyOf: volumeA!.Metadata.Current.VolumeId);
            storeB.TryGet("vol", out var volumeB);
            (copies._volumeA, copies._volumeB) = (volumeA, volumeB!);
            copies._copy = ReplicatedVolume.Open(volumeB!, new ReplicationSettings { Role = CopyRole.Secondary }, TestReplication.Context());

            var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            copies._owned.Add(listener);
            copies._serving = ServeOnePlainLinkAsync(listener, copies._copy, copies._stop.Token);
            var target = (IPEndPoint)listener.LocalEndpoint;
            if (bytesPerSecond > 0)
            {
                var relay = new TcpListener(IPAddress.Loopback, 0);
                relay.Start();
                copies._owned.Add(relay);
                copies._running.Add(copies.RelayAsync(relay, target, bytesPerSecond, copies._stop.Token));
                target = (IPEndPoint)relay.LocalEndpoint;
            }

            var context = TestReplication.Context(async (_, ct) =>
            {
                var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                if (sendBuffer > 0)
                {
                    socket.SendBufferSize = sendBuffer;
                }

                await socket.ConnectAsync(target, ct);
                return new NetworkStream(socket, ownsSocket: true);
            });
            var settings = new ReplicationSettings { Role = CopyRole.Primary, Peers = [new PeerAddress("b", target.ToString())] };
            copies.Primary = ReplicatedVolume.Open(volumeA, settings, context);
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (copies.Primary.CopyState().Connection != ConnectionState.Connected)
            {
                Assert.True(DateTime.UtcNow < deadline, $"the copy is not in sync: {copies.Primary.CopyState().Connection}");
                await Task.Delay(20);
            }

            return copies;
        }

        /// <summary>Asserts the link is still up, closes both copies and compares their files; the primary's bytes.</summary>
        public async Task<byte[]> AssertInStepAsync()
        {
            var peer = Primary.CopyState().Peers[0];
            Assert.True(peer.Connection == ConnectionState.Connected, $"{peer}; the copy: {(_serving.IsCompleted ? (await _serving).Reason : "serving")}");
            await DisposeAsync();
            var onA = await File.ReadAllBytesAsync(_volumeA.DataPath);
            Assert.Equal(onA, await File.ReadAllBytesAsync(_volumeB.DataPath));
            return onA;
        }

        public async ValueTask DisposeAsync()
        {
            if (_stop.IsCancellationRequested)
            {
                return;
            }

            await Primary.DisposeAsync();
            await _stop.CancelAsync();
            await _serving;
            await _copy.DisposeAsync();
            await Task.WhenAll(_running);
            _owned.ForEach(o => o.Dispose());
        }

        /// <summary>One connection passed on to <paramref name="target"/>, the primary's bytes at most <paramref name="bytesPerSecond"/>.</summary>
        private async Task RelayAsync(TcpListener relay, IPEndPoint target, int bytesPerSecond, CancellationToken ct)
        {
            try
            {
                using var front = await relay.AcceptSocketAsync(ct);
                front.ReceiveBufferSize = 64 << 10; // what a slow link holds in flight, not a loopback's megabytes
                using var back = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                await back.ConnectAsync(target, ct);
                await Task.WhenAny(PumpAsync(front, back, bytesPerSecond, ct), PumpAsync(back, front, 0, ct));
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException)
            {
                // The test is over.
            }
        }

        private async Task PumpAsync(Socket from, Socket to, int bytesPerSecond, CancellationToken ct)
        {
            var buffer = new byte[16 << 10];
            try
            {
                while (await ReceiveUnlessPausedAsync(from, buffer, pausable: bytesPerSecond > 0, ct) is var read and > 0)
                {
                    await to.SendAsync(buffer.AsMemory(0, read), ct);
                    if (bytesPerSecond > 0)
                    {
                        await Task.Delay(TimeSpan.FromSeconds((double)read / bytesPerSecond), ct);
                    }
                }
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException)
            {
                // One side closed or the test is over.
            }
        }

        private async ValueTask<int> ReceiveUnlessPausedAsync(Socket from, byte[] buffer, bool pausable, CancellationToken ct)
        {
            while (pausable && Paused)
            {
                await Task.Delay(50, ct);
            }

            return await from.ReceiveAsync(buffer, ct);
        }
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
