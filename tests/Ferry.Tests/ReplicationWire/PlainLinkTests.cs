using System.Net;
using System.Net.Sockets;
using Ferry.Storage;
using Ferry.Storage.Replication.Wire;

namespace Ferry.Tests.ReplicationWire;

/// <summary>How a copy reads a plain TCP link, on real sockets and files: data spliced into the file, a failed write, the blocking stream, the receiver thread.</summary>
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
