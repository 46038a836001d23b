using System.Buffers.Binary;

namespace Ferry.Storage.Nbd;

/// <summary>The connection's single writer: takes queued replies in completion order and writes them to the pipe.</summary>
internal sealed partial class NbdConnection
{
    /// <summary>Flush at least this often while replies keep coming, so large reads stream instead of piling up.</summary>
    private const int FlushThreshold = 256 << 10;

    private const int ErrorChunkFixedSize = 4 + 2;

    private async Task SendLoopAsync()
    {
        var replies = _replies.Reader;
        var broken = false;
        while (await replies.WaitToReadAsync(CancellationToken.None).ConfigureAwait(false))
        {
            while (replies.TryRead(out var reply))
            {
                if (!broken)
                {
                    Write(reply);
                }

                // Once the client is gone replies are dropped, but buffers and slots still come back.
                if (reply.Buffer is not null)
                {
                    _pool.Return(reply.Buffer);
                }

                _slots.Release();
                if (!broken && _output.UnflushedBytes >= FlushThreshold)
                {
                    broken = !await TryFlushAsync().ConfigureAwait(false);
                }
            }

            if (!broken)
            {
                broken = !await TryFlushAsync().ConfigureAwait(false);
            }
        }
    }

    private async ValueTask<bool> TryFlushAsync()
    {
        try
        {
            var result = await _output.FlushAsync(_ct).ConfigureAwait(false);
            if (!result.IsCompleted && !result.IsCanceled)
            {
                return true;
            }
        }
        catch (Exception e) when (IsDisconnect(e))
        {
        }

        // The client cannot hear us any more: stop the reader too.
        await _transmission.CancelAsync().ConfigureAwait(false);
        return false;
    }

    /// <summary>Simple replies unless structured replies were negotiated; then chunks for data, block status and errors.</summary>
    private void Write(in NbdReply reply)
    {
        switch (reply.Kind)
        {
            case NbdReplyKind.Done:
                // A simple reply is allowed for anything but READ when there is no payload, structured or not.
                NbdReplyWriter.WriteSimpleReply(_output.GetSpan(NbdWire.SimpleReplyHeaderSize), NbdErrno.None, reply.Cookie);
                _output.Advance(NbdWire.SimpleReplyHeaderSize);
                break;

            case NbdReplyKind.Error when _structured:
                var message = Message(reply.Error);
                var length = ErrorChunkFixedSize + message.Length;
                var span = _output.GetSpan(NbdWire.StructuredReplyHeaderSize + length);
                NbdReplyWriter.WriteStructuredHeader(span, NbdWire.ReplyFlagDone, NbdWire.ReplyTypeError, reply.Cookie, (uint)length);
                span = span[NbdWire.StructuredReplyHeaderSize..];
                BinaryPrimitives.WriteUInt32BigEndian(span, (uint)reply.Error);
                BinaryPrimitives.WriteUInt16BigEndian(span[4..], (ushort)message.Length);
                message.CopyTo(span[ErrorChunkFixedSize..]);
                _output.Advance(NbdWire.StructuredReplyHeaderSize + length);
                break;

            case NbdReplyKind.Error:
                NbdReplyWriter.WriteSimpleReply(_output.GetSpan(NbdWire.SimpleReplyHeaderSize), reply.Error, reply.Cookie);
                _output.Advance(NbdWire.SimpleReplyHeaderSize);
                break;

            case NbdReplyKind.Data when _structured:
                // One NBD_REPLY_TYPE_OFFSET_DATA chunk: the data is already read, so no error can follow it.
                span = _output.GetSpan(NbdWire.StructuredReplyHeaderSize + 8);
                NbdReplyWriter.WriteStructuredHeader(span, NbdWire.ReplyFlagDone, NbdWire.ReplyTypeOffsetData, reply.Cookie, (uint)(8 + reply.Length));
                BinaryPrimitives.WriteUInt64BigEndian(span[NbdWire.StructuredReplyHeaderSize..], reply.Offset);
                _output.Advance(NbdWire.StructuredReplyHeaderSize + 8);
                WritePayload(reply.Buffer.AsSpan(0, reply.Length));
                break;

            case NbdReplyKind.Data:
                NbdReplyWriter.WriteSimpleReply(_output.GetSpan(NbdWire.SimpleReplyHeaderSize), NbdErrno.None, reply.Cookie);
                _output.Advance(NbdWire.SimpleReplyHeaderSize);
                WritePayload(reply.Buffer.AsSpan(0, reply.Length));
                break;

            case NbdReplyKind.BlockStatus:
                span = _output.GetSpan(NbdWire.StructuredReplyHeaderSize);
                NbdReplyWriter.WriteStructuredHeader(span, NbdWire.ReplyFlagDone, NbdWire.ReplyTypeBlockStatus, reply.Cookie, (uint)reply.Length);
                _output.Advance(NbdWire.StructuredReplyHeaderSize);
                WritePayload(reply.Buffer.AsSpan(0, reply.Length));
                break;
        }
    }

    /// <summary>Copies into the pipe's own buffers piece by piece; a 32 MiB read is never one contiguous span.</summary>
    private void WritePayload(ReadOnlySpan<byte> payload)
    {
        while (!payload.IsEmpty)
        {
            var span = _output.GetSpan();
            var take = Math.Min(span.Length, payload.Length);
            payload[..take].CopyTo(span);
            _output.Advance(take);
            payload = payload[take..];
        }
    }

    /// <summary>The human-readable text of a structured error chunk.</summary>
    private static ReadOnlySpan<byte> Message(NbdErrno error) => error switch
    {
        NbdErrno.Perm => "the export is read-only"u8,
        NbdErrno.Io => "input/output error"u8,
        NbdErrno.Invalid => "invalid request: unknown command or flag, zero length, or beyond the end of the export"u8,
        NbdErrno.NoSpace => "no space left, or beyond the end of the export"u8,
        NbdErrno.Overflow => "request longer than the 32 MiB maximum payload"u8,
        NbdErrno.NotSupported => "cannot zero this range fast"u8,
        NbdErrno.Shutdown => "the server is shutting down"u8,
        _ => "request failed"u8,
    };
}
