using System.Buffers;
using System.IO.Pipelines;
using Ferry.Storage.Replication;
using Ferry.Storage.Replication.Wire;
using Microsoft.Extensions.Logging.Abstractions;

namespace Ferry.Tests.ReplicationWire;

/// <summary>A primary's end of a replication link to a copy, over in-memory pipes: the copy's side is a real <see cref="ReplicaSession"/>.</summary>
internal sealed class ReplicaLink
{
    private readonly Pipe _toReplica = new();
    private readonly Pipe _fromReplica = new();
    private readonly Task<ReplicaSessionEnd> _session;

    public ReplicaLink(ReplicatedVolume copy, TimeSpan? idleTimeout = null)
    {
        var session = new ReplicaSession(id => id == copy.VolumeId ? copy : null, _toReplica.Reader, _fromReplica.Writer, "test", NullLogger.Instance)
        {
            IdleTimeout = idleTimeout ?? PeerLink.DeadAfter,
        };
        _session = session.RunAsync(CancellationToken.None);
    }

    /// <summary>What the primary sends.</summary>
    public PipeWriter Output => _toReplica.Writer;

    /// <summary>What the copy answers.</summary>
    public PipeReader Input => _fromReplica.Reader;

    public async Task SendAsync(Action<IBufferWriter<byte>> write)
    {
        write(Output);
        await Output.FlushAsync();
    }

    /// <summary>A Write frame of <paramref name="length"/> bytes of <paramref name="value"/>.</summary>
    public async Task WriteAsync(ulong sequence, ulong epoch, long offset, byte value, int length = 4096)
    {
        LinkFrameWriter.WriteWrite(Output, new WriteFrame(sequence, epoch, offset, length, Fua: false));
        Output.GetSpan(length)[..length].Fill(value);
        Output.Advance(length);
        await Output.FlushAsync();
    }

    public async Task<LinkFrame> ReceiveAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (true)
        {
            var result = await Input.ReadAsync(timeout.Token);
            var reader = new SequenceReader<byte>(result.Buffer);
            if (LinkFrameParser.TryParse(ref reader, out var frame, out var error) == OperationStatus.Done)
            {
                Input.AdvanceTo(reader.Position);
                return frame;
            }

            Assert.Equal(LinkWireError.None, error);
            Assert.False(result.IsCompleted, "the replica closed the link without a frame");
            Input.AdvanceTo(result.Buffer.Start, result.Buffer.End);
        }
    }

    public async Task<ReplicaSessionEnd> EndedAsync() => await _session.WaitAsync(TimeSpan.FromSeconds(10));

    public void Close() => Output.Complete();
}
