using System.IO.Pipelines;

namespace Ferry.Storage.Replication.Wire;

/// <summary>
/// Buffer sizes for the link's streams: a frame carries up to 32 MiB, so reads and writes move large
/// blocks (the defaults of 4 KiB would cost a system call per 4 KiB of replicated data).
/// </summary>
public static class LinkPipes
{
    public static readonly StreamPipeReaderOptions Reader = new(bufferSize: 256 << 10, minimumReadSize: 64 << 10);

    public static readonly StreamPipeWriterOptions Writer = new(minimumBufferSize: 64 << 10);

    /// <summary>The primary's queue of frames to send: never pauses (the credit window bounds it), large segments.</summary>
    public static readonly PipeOptions SendQueue = new(pauseWriterThreshold: 0, resumeWriterThreshold: 0, minimumSegmentSize: 256 << 10, useSynchronizationContext: false);
}
