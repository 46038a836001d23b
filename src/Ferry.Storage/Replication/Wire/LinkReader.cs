using System.Buffers;
using System.IO.Pipelines;

namespace Ferry.Storage.Replication.Wire;

/// <summary>Reads frames and the data after them from a link; bad input is returned as an error text, never thrown.</summary>
internal static class LinkReader
{
    /// <summary>The next frame, an error text for bad input, or null at the end of the stream.</summary>
    public static async ValueTask<(LinkFrame? Frame, string? Error)?> ReadFrameAsync(PipeReader input, CancellationToken ct)
    {
        while (true)
        {
            var result = await input.ReadAsync(ct).ConfigureAwait(false);
            var reader = new SequenceReader<byte>(result.Buffer);
            var status = LinkFrameParser.TryParse(ref reader, out var frame, out var error);
            if (status == OperationStatus.Done)
            {
                input.AdvanceTo(reader.Position);
                return (frame, null);
            }

            if (status == OperationStatus.InvalidData)
            {
                input.AdvanceTo(result.Buffer.Start);
                return (null, $"invalid frame: {error}");
            }

            if (result.IsCompleted)
            {
                input.AdvanceTo(result.Buffer.End);
                return result.Buffer.IsEmpty ? null : (null, "the link ended inside a frame");
            }

            input.AdvanceTo(result.Buffer.Start, result.Buffer.End);
        }
    }

    /// <summary>Reads the data that follows a frame; false when the stream ends first. <paramref name="arriving"/> is told of each part that leaves more to come.</summary>
    public static async ValueTask<bool> ReadDataAsync(PipeReader input, Memory<byte> destination, CancellationToken ct, Action? arriving = null)
    {
        while (!destination.IsEmpty)
        {
            var result = await input.ReadAsync(ct).ConfigureAwait(false);
            var take = (int)Math.Min(destination.Length, result.Buffer.Length);
            result.Buffer.Slice(0, take).CopyTo(destination.Span);
            destination = destination[take..];
            input.AdvanceTo(result.Buffer.GetPosition(take));
            if (!destination.IsEmpty)
            {
                if (result.IsCompleted)
                {
                    return false;
                }

                arriving?.Invoke();
            }
        }

        return true;
    }
}
