using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Net.Security;
using System.Text;

namespace Ferry.Storage.Nbd;

/// <summary>Fixed newstyle negotiation (proto.md "Handshake"). Not a hot path: it may allocate.</summary>
internal sealed partial class NbdConnection
{
    private bool _noZeroes;
    private bool _tls;
    private bool _structured;

    /// <summary>The export base:allocation was selected for by the last NBD_OPT_SET_META_CONTEXT, if any.</summary>
    private string? _metaContextExport;

    private NbdTransmissionFlags _transmissionFlags;

    private enum OptionOutcome
    {
        Continue,
        Close,
        Transmit,
        StartTls,
    }

    /// <summary>Runs option haggling; returns the export to serve, or null when the session ended.</summary>
    private async Task<NbdExport?> HandshakeAsync(CancellationToken ct)
    {
        WriteGreeting();
        await _output.FlushAsync(ct).ConfigureAwait(false);

        var result = await _input.ReadAtLeastAsync(NbdWire.ClientFlagsSize, ct).ConfigureAwait(false);
        if (result.Buffer.Length < NbdWire.ClientFlagsSize)
        {
            return Left(result.Buffer, "client left before sending its flags");
        }

        var clientFlags = ReadUInt32(result.Buffer);
        _input.AdvanceTo(result.Buffer.GetPosition(NbdWire.ClientFlagsSize));
        if ((clientFlags & ~NbdWire.KnownClientFlags) != 0 || (clientFlags & NbdWire.ClientFlagFixedNewstyle) == 0)
        {
            // Old style or non-fixed newstyle clients, or unknown flags: proto.md says drop the connection.
            NbdLog.NotFixedNewstyle(_logger, _id, clientFlags);
            return null;
        }

        _noZeroes = (clientFlags & NbdWire.ClientFlagNoZeroes) != 0;
        while (true)
        {
            result = await _input.ReadAtLeastAsync(NbdWire.OptionHeaderSize, ct).ConfigureAwait(false);
            if (result.Buffer.Length < NbdWire.OptionHeaderSize)
            {
                return Left(result.Buffer, "client left during option haggling");
            }

            if (ParseOptionHeader(result.Buffer, out var header) != OperationStatus.Done)
            {
                _input.AdvanceTo(result.Buffer.Start);
                NbdLog.ProtocolViolation(_logger, _id, "option without IHAVEOPT magic");
                return null;
            }

            _input.AdvanceTo(result.Buffer.GetPosition(NbdWire.OptionHeaderSize));
            if (header.Length > NbdWire.MaxOptionLength)
            {
                if (header.Option == NbdOption.ExportName || !await SkipAsync(header.Length, ct).ConfigureAwait(false))
                {
                    NbdLog.OptionTooLong(_logger, _id, header.Option, header.Length);
                    return null;
                }

                Refuse(header.Option, NbdOptionReply.ErrTooBig);
                await _output.FlushAsync(ct).ConfigureAwait(false);
                continue;
            }

            OptionOutcome outcome;
            NbdExport? export;
            if (header.Length == 0)
            {
                outcome = HandleOption(header, ReadOnlySequence<byte>.Empty, out export);
            }
            else
            {
                result = await _input.ReadAtLeastAsync((int)header.Length, ct).ConfigureAwait(false);
                if (result.Buffer.Length < header.Length)
                {
                    return Left(result.Buffer, "client left in the middle of an option");
                }

                var data = result.Buffer.Slice(0, header.Length);
                outcome = HandleOption(header, data, out export);
                _input.AdvanceTo(data.End);
            }

            await _output.FlushAsync(ct).ConfigureAwait(false);
            switch (outcome)
            {
                case OptionOutcome.Close:
                    return null;
                case OptionOutcome.Transmit:
                    return export;
                case OptionOutcome.StartTls when !await StartTlsAsync(ct).ConfigureAwait(false):
                    return null;
                default:
                    break;
            }
        }
    }

    private NbdExport? Left(ReadOnlySequence<byte> buffer, string reason)
    {
        _input.AdvanceTo(buffer.End);
        NbdLog.Closed(_logger, _id, reason);
        return null;
    }

    private OptionOutcome HandleOption(NbdOptionHeader header, ReadOnlySequence<byte> data, out NbdExport? export)
    {
        export = null;
        var option = header.Option;
        if (_options.RequireTls && !_tls && option is not (NbdOption.StartTls or NbdOption.Abort))
        {
            // proto.md "FORCEDTLS mode": EXPORT_NAME cannot be answered with an error, so the session ends.
            return option == NbdOption.ExportName ? Violation("NBD_OPT_EXPORT_NAME before TLS") : Refuse(option, NbdOptionReply.ErrTlsRequired);
        }

        switch (option)
        {
            case NbdOption.ExportName:
                if (ParseExportName(data, out var name) != OperationStatus.Done || !_exports.TryOpen(name, out export))
                {
                    NbdLog.Closed(_logger, _id, "NBD_OPT_EXPORT_NAME for an unknown export");
                    return OptionOutcome.Close;
                }

                WriteExportNameReply(export);
                return OptionOutcome.Transmit;

            case NbdOption.Abort:
                WriteOptionReply(option, NbdOptionReply.Ack, []);
                NbdLog.Closed(_logger, _id, "client aborted the handshake");
                return OptionOutcome.Close;

            case NbdOption.List when data.Length != 0:
                return Refuse(option, NbdOptionReply.ErrInvalid);

            case NbdOption.List:
                foreach (var listed in _exports.List())
                {
                    var nameBytes = Encoding.UTF8.GetBytes(listed.Name);
                    var description = Encoding.UTF8.GetBytes(listed.Description);
                    var payload = new byte[4 + nameBytes.Length + description.Length];
                    BinaryPrimitives.WriteUInt32BigEndian(payload, (uint)nameBytes.Length);
                    nameBytes.CopyTo(payload, 4);
                    description.CopyTo(payload, 4 + nameBytes.Length);
                    WriteOptionReply(option, NbdOptionReply.Server, payload);
                }

                WriteOptionReply(option, NbdOptionReply.Ack, []);
                return OptionOutcome.Continue;

            case NbdOption.StartTls when data.Length != 0 || _tls:
                return Refuse(option, NbdOptionReply.ErrInvalid);

            case NbdOption.StartTls when _options.TlsCertificate is null:
                return Refuse(option, NbdOptionReply.ErrPolicy);

            case NbdOption.StartTls:
                WriteOptionReply(option, NbdOptionReply.Ack, []);
                return OptionOutcome.StartTls;

            case NbdOption.Info or NbdOption.Go:
                if (ParseExportQuery(data, out var query) != OperationStatus.Done)
                {
                    return Refuse(option, NbdOptionReply.ErrInvalid);
                }

                if (!_exports.TryOpen(query.ExportName, out var found))
                {
                    return Refuse(option, NbdOptionReply.ErrUnknown);
                }

                WriteExportInfo(option, found, query);
                WriteOptionReply(option, NbdOptionReply.Ack, []);
                export = found;
                return option == NbdOption.Go ? OptionOutcome.Transmit : OptionOutcome.Continue;

            case NbdOption.StructuredReply when data.Length != 0:
                return Refuse(option, NbdOptionReply.ErrInvalid);

            case NbdOption.StructuredReply:
                _structured = true;
                WriteOptionReply(option, NbdOptionReply.Ack, []);
                return OptionOutcome.Continue;

            case NbdOption.ListMetaContext or NbdOption.SetMetaContext:
                return HandleMetaContext(option, data);

            default:
                return Refuse(option, NbdOptionReply.ErrUnsupported);
        }
    }

    /// <summary>proto.md "Metadata querying": we offer base:allocation only.</summary>
    private OptionOutcome HandleMetaContext(NbdOption option, ReadOnlySequence<byte> data)
    {
        var set = option == NbdOption.SetMetaContext;
        if (set)
        {
            _metaContextExport = null; // SET replaces the selection, even when it fails
        }

        if (!_structured || ParseMetaContextQuery(data, out var query) != OperationStatus.Done)
        {
            return Refuse(option, NbdOptionReply.ErrInvalid);
        }

        if (!_exports.TryOpen(query!.ExportName, out _))
        {
            return Refuse(option, NbdOptionReply.ErrUnknown);
        }

        // LIST with no queries lists everything, and "base:" is the namespace wildcard; SET takes exact names only.
        var matches = !set && query.Queries.Count == 0;
        foreach (var q in query.Queries)
        {
            matches |= q == NbdWire.MetaContextBaseAllocation || (!set && q == NbdWire.MetaContextNamespaceBase);
        }

        if (matches)
        {
            var name = Encoding.UTF8.GetBytes(NbdWire.MetaContextBaseAllocation);
            var payload = new byte[4 + name.Length];
            BinaryPrimitives.WriteUInt32BigEndian(payload, set ? NbdWire.BaseAllocationContextId : 0);
            name.CopyTo(payload, 4);
            WriteOptionReply(option, NbdOptionReply.MetaContext, payload);
            if (set)
            {
                _metaContextExport = query.ExportName;
            }
        }

        WriteOptionReply(option, NbdOptionReply.Ack, []);
        return OptionOutcome.Continue;
    }

    private NbdTransmissionFlags TransmissionFlags(IBlockDevice device)
    {
        var flags = NbdTransmissionFlags.HasFlags | NbdTransmissionFlags.SendFlush | NbdTransmissionFlags.SendFua | NbdTransmissionFlags.SendCache;
        flags |= device.IsReadOnly
            ? NbdTransmissionFlags.ReadOnly
            : NbdTransmissionFlags.SendTrim | NbdTransmissionFlags.SendWriteZeroes | NbdTransmissionFlags.SendFastZero;
        if (device.FlushIsGlobal)
        {
            flags |= NbdTransmissionFlags.CanMultiConn;
        }

        if (_structured)
        {
            flags |= NbdTransmissionFlags.SendDontFragment; // every read is one data chunk anyway
        }

        return flags;
    }

    /// <summary>NBD_REP_INFO replies for INFO/GO: always EXPORT and BLOCK_SIZE, NAME and DESCRIPTION when asked.</summary>
    private void WriteExportInfo(NbdOption option, NbdExport export, NbdExportQuery query)
    {
        _transmissionFlags = TransmissionFlags(export.Device);
        Span<byte> info = stackalloc byte[14];
        BinaryPrimitives.WriteUInt16BigEndian(info, (ushort)NbdInfoType.Export);
        BinaryPrimitives.WriteUInt64BigEndian(info[2..], (ulong)export.Device.Size);
        BinaryPrimitives.WriteUInt16BigEndian(info[10..], (ushort)_transmissionFlags);
        WriteOptionReply(option, NbdOptionReply.Info, info[..12]);

        // Sent even when not asked: they are the defaults proto.md recommends, so a client that ignores them is fine.
        BinaryPrimitives.WriteUInt16BigEndian(info, (ushort)NbdInfoType.BlockSize);
        BinaryPrimitives.WriteUInt32BigEndian(info[2..], NbdWire.MinimumBlockSize);
        BinaryPrimitives.WriteUInt32BigEndian(info[6..], NbdWire.PreferredBlockSize);
        BinaryPrimitives.WriteUInt32BigEndian(info[10..], NbdWire.MaxPayload);
        WriteOptionReply(option, NbdOptionReply.Info, info);

        if (query.WantsName)
        {
            WriteInfoString(option, NbdInfoType.Name, export.Name);
        }

        if (query.WantsDescription && export.Description.Length != 0)
        {
            WriteInfoString(option, NbdInfoType.Description, export.Description);
        }
    }

    private void WriteInfoString(NbdOption option, NbdInfoType type, string value)
    {
        var payload = new byte[2 + Encoding.UTF8.GetByteCount(value)];
        BinaryPrimitives.WriteUInt16BigEndian(payload, (ushort)type);
        Encoding.UTF8.GetBytes(value, payload.AsSpan(2));
        WriteOptionReply(option, NbdOptionReply.Info, payload);
    }

    /// <summary>NBD_OPT_EXPORT_NAME's reply: size, transmission flags, and 124 zero bytes unless NO_ZEROES.</summary>
    private void WriteExportNameReply(NbdExport export)
    {
        _transmissionFlags = TransmissionFlags(export.Device);
        var length = 8 + 2 + (_noZeroes ? 0 : NbdWire.ExportNameReplyPadding);
        var span = _output.GetSpan(length)[..length];
        BinaryPrimitives.WriteUInt64BigEndian(span, (ulong)export.Device.Size);
        BinaryPrimitives.WriteUInt16BigEndian(span[8..], (ushort)_transmissionFlags);
        span[10..].Clear();
        _output.Advance(length);
    }

    private void WriteGreeting()
    {
        var span = _output.GetSpan(NbdWire.GreetingSize);
        BinaryPrimitives.WriteUInt64BigEndian(span, NbdWire.InitMagic);
        BinaryPrimitives.WriteUInt64BigEndian(span[8..], NbdWire.OptionMagic);
        BinaryPrimitives.WriteUInt16BigEndian(span[16..], NbdWire.FlagFixedNewstyle | NbdWire.FlagNoZeroes);
        _output.Advance(NbdWire.GreetingSize);
    }

    private void WriteOptionReply(NbdOption option, NbdOptionReply reply, ReadOnlySpan<byte> data)
    {
        var length = NbdWire.OptionReplyHeaderSize + data.Length;
        var span = _output.GetSpan(length);
        NbdReplyWriter.WriteOptionReplyHeader(span, option, reply, (uint)data.Length);
        data.CopyTo(span[NbdWire.OptionReplyHeaderSize..]);
        _output.Advance(length);
    }

    private OptionOutcome Refuse(NbdOption option, NbdOptionReply reply)
    {
        NbdLog.OptionRefused(_logger, _id, option, reply);
        WriteOptionReply(option, reply, []);
        return OptionOutcome.Continue;
    }

    private OptionOutcome Violation(string problem)
    {
        NbdLog.ProtocolViolation(_logger, _id, problem);
        return OptionOutcome.Close;
    }

    /// <summary>Reads and drops the data of an option too long to buffer; false if the client left first.</summary>
    private async ValueTask<bool> SkipAsync(long length, CancellationToken ct)
    {
        while (length > 0)
        {
            var result = await _input.ReadAsync(ct).ConfigureAwait(false);
            var take = Math.Min(length, result.Buffer.Length);
            _input.AdvanceTo(result.Buffer.GetPosition(take));
            length -= take;
            if (length > 0 && result.IsCompleted)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// Upgrades the stream after STARTTLS was acknowledged (proto.md "TLS support"). The client may send nothing
    /// but its TLS hello now, so bytes already buffered are a violation. Negotiated state starts over.
    /// </summary>
    private async Task<bool> StartTlsAsync(CancellationToken ct)
    {
        if (_input.TryRead(out var early))
        {
            var extra = !early.Buffer.IsEmpty;
            _input.AdvanceTo(early.Buffer.Start);
            if (extra)
            {
                NbdLog.ProtocolViolation(_logger, _id, "data after NBD_OPT_STARTTLS before the TLS handshake");
                return false;
            }
        }

        await _input.CompleteAsync().ConfigureAwait(false);
        await _output.CompleteAsync().ConfigureAwait(false);
        var ssl = new SslStream(_stream, leaveInnerStreamOpen: false);
        _stream = ssl;
        _input = PipeReader.Create(ssl, ReaderOptions);
        _output = PipeWriter.Create(ssl, WriterOptions);
        try
        {
            await ssl.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = _options.TlsCertificate }, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is System.Security.Authentication.AuthenticationException or IOException)
        {
            NbdLog.TlsFailed(_logger, _id, e);
            return false;
        }

        NbdLog.TlsEstablished(_logger, _id, ssl.SslProtocol);
        _tls = true;
        _structured = false;
        _metaContextExport = null;
        return true;
    }

    private static uint ReadUInt32(ReadOnlySequence<byte> buffer)
    {
        Span<byte> bytes = stackalloc byte[4];
        buffer.Slice(0, 4).CopyTo(bytes);
        return BinaryPrimitives.ReadUInt32BigEndian(bytes);
    }

    private static OperationStatus ParseOptionHeader(ReadOnlySequence<byte> buffer, out NbdOptionHeader header)
    {
        var reader = new SequenceReader<byte>(buffer);
        return NbdOptionParser.TryParseHeader(ref reader, out header, out _);
    }

    private static OperationStatus ParseExportQuery(ReadOnlySequence<byte> data, out NbdExportQuery query)
    {
        var reader = new SequenceReader<byte>(data);
        return NbdOptionParser.TryParseExportQuery(ref reader, out query, out _);
    }

    private static OperationStatus ParseMetaContextQuery(ReadOnlySequence<byte> data, out NbdMetaContextQuery? query)
    {
        var reader = new SequenceReader<byte>(data);
        return NbdOptionParser.TryParseMetaContextQuery(ref reader, out query, out _);
    }

    private static OperationStatus ParseExportName(ReadOnlySequence<byte> data, out string name)
    {
        var reader = new SequenceReader<byte>(data);
        return NbdOptionParser.TryParseExportName(ref reader, out name, out _);
    }
}
