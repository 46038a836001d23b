using System.Buffers;
using System.Net.Sockets;
using System.Security.Cryptography;
using Ferry.Storage.Replication.Wire;
using Ferry.Storage.Volumes;

namespace Ferry.IntegrationTests.Replication;

/// <summary>
/// A stranger on a copy's replication port: garbage, a Hello for another volume or size, a primary with an
/// epoch older than the copy has seen. Each is answered with an Error frame naming why, logged, and
/// nothing is written; the real primary's link carries on.
/// </summary>
public sealed class LinkBadInputTests
{
    [Fact]
    public async Task Bad_input_on_the_replication_port_is_refused_logged_and_writes_nothing()
    {
        await using var pair = await ReplicatedPair.StartAsync("16M");

        // B learns epoch 3 from its primary, so that a Hello at epoch 2 is a replayed old primary.
        await pair.A.FerryJsonAsync("volume", "demote", ReplicatedPair.Volume);
        await pair.A.FerryJsonAsync("volume", "promote", ReplicatedPair.Volume, "--epoch", "3");
        await ReplicatedPair.WaitInSyncAsync(pair.A);
        var show = await ReplicatedPair.ShowAsync(pair.B);
        var id = Guid.Parse(show.GetProperty("id").GetString()!);
        var size = show.GetProperty("size").GetInt64();
        var before = SHA256.HashData(await File.ReadAllBytesAsync(ReplicatedPair.DataFile(pair.B)));

        var garbage = await ExchangeAsync(pair.PortB, [.. Enumerable.Repeat((byte)0x5A, 64)]);
        Assert.Equal(LinkErrorCode.ProtocolViolation, garbage.Code);

        var wrongVolume = await ExchangeAsync(pair.PortB, Hello(Guid.NewGuid(), size, epoch: 3));
        Assert.Equal(LinkErrorCode.WrongVolume, wrongVolume.Code);

        var wrongSize = await ExchangeAsync(pair.PortB, Hello(id, size * 2, epoch: 3));
        Assert.Equal(LinkErrorCode.WrongSize, wrongSize.Code);
        Assert.Contains($"{size} bytes here", wrongSize.Message, StringComparison.Ordinal);

        var stale = await ExchangeAsync(pair.PortB, Hello(id, size, epoch: 2), Write(epoch: 2));
        Assert.Equal(LinkErrorCode.StaleEpoch, stale.Code);

        Assert.Equal(before, SHA256.HashData(await File.ReadAllBytesAsync(ReplicatedPair.DataFile(pair.B))));
        Assert.Equal("connected", (await ReplicatedPair.PeerAsync(pair.A)).GetProperty("connection").GetString());
        foreach (var code in new[] { "ProtocolViolation", "WrongVolume", "WrongSize", "StaleEpoch" })
        {
            Assert.Contains($"replication link refused ({code})", pair.B.Log, StringComparison.Ordinal);
        }
    }

    private static byte[] Hello(Guid volume, long size, ulong epoch)
    {
        var buffer = new ArrayBufferWriter<byte>();
        LinkFrameWriter.WriteHello(buffer, new HelloFrame(
            volume, size, new GenerationIds(0x1234, 0, 0, 0), epoch, 0, DiskState.UpToDate, CopyRole.Primary, ReplicationProtocol.C, false, "intruder"));
        return buffer.WrittenSpan.ToArray();
    }

    private static byte[] Write(ulong epoch)
    {
        var buffer = new ArrayBufferWriter<byte>();
        LinkFrameWriter.WriteWrite(buffer, new WriteFrame(1, epoch, 0, 4096, Fua: true));
        buffer.Write(new byte[4096].AsSpan());
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Sends the frames, then reads until the copy closes the link; returns its Error frame.</summary>
    private static async Task<(LinkErrorCode Code, string Message)> ExchangeAsync(int port, params byte[][] frames)
    {
        using var client = new TcpClient();
        await client.ConnectAsync("127.0.0.1", port);
        var stream = client.GetStream();
        foreach (var frame in frames)
        {
            await stream.WriteAsync(frame);
        }

        using var received = new MemoryStream();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        try
        {
            await stream.CopyToAsync(received, timeout.Token);
        }
        catch (IOException)
        {
            // A reset after the error frame: what was read is enough.
        }

        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(received.ToArray()));
        while (LinkFrameParser.TryParse(ref reader, out var frame, out _) == OperationStatus.Done)
        {
            if (frame.Header.Type == LinkFrameType.Error)
            {
                return ((LinkErrorCode)frame.ErrorCode, frame.ErrorMessage!);
            }
        }

        throw new Xunit.Sdk.XunitException($"no error frame in the {received.Length} bytes the copy sent");
    }
}
