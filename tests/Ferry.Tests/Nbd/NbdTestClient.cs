using System.Buffers.Binary;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Ferry.Storage.Nbd;

namespace Ferry.Tests.Nbd;

/// <summary>One reply as the client saw it: the error, a read's data, a block status's extents, an error chunk's message.</summary>
internal sealed record TestReply(ulong Cookie, uint Error, byte[]? Data = null, (uint Length, uint Flags)[]? Extents = null, string? Message = null);

/// <summary>A raw NBD client that sends exactly the bytes a test asks for and decodes what comes back, with deadlines.</summary>
internal sealed class NbdTestClient : IAsyncDisposable
{
    private Stream _stream;
    private readonly CancellationTokenSource _deadline = new(TimeSpan.FromSeconds(20));
    private readonly Dictionary<ulong, uint> _reads = [];
    private readonly Dictionary<ulong, TestReply> _partial = [];

    private NbdTestClient(Socket socket) => _stream = new NetworkStream(socket, ownsSocket: true);

    public bool Structured { get; private set; }

    public ulong Size { get; private set; }

    public NbdTransmissionFlags Flags { get; private set; }

    private CancellationToken Ct => _deadline.Token;

    public static async Task<NbdTestClient> ConnectAsync(string socketPath)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath));
        return new NbdTestClient(socket);
    }

    public static async Task<NbdTestClient> ConnectAsync(IPEndPoint endpoint)
    {
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(endpoint);
        return new NbdTestClient(socket);
    }

    /// <summary>After STARTTLS was acknowledged: TLS over the same connection, trusting the server's certificate as given.</summary>
    public async Task UpgradeToTlsAsync(X509Certificate2 expected)
    {
        var ssl = new SslStream(_stream, leaveInnerStreamOpen: false, (_, certificate, _, _) => certificate is not null && certificate.GetCertHashString() == expected.GetCertHashString());
        await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "localhost" }, Ct);
        _stream = ssl;
    }

    /// <summary>Connects and negotiates up to transmission with NBD_OPT_GO.</summary>
    public static async Task<NbdTestClient> OpenAsync(string socketPath, string export = "disk", bool structured = true, bool metaContext = true)
    {
        var client = await ConnectAsync(socketPath);
        await client.ReadGreetingAsync();
        await client.SendAsync(ClientFlags(NbdWire.ClientFlagFixedNewstyle | NbdWire.ClientFlagNoZeroes));
        if (structured)
        {
            Assert.Equal(NbdOptionReply.Ack, (await client.OptionAsync(NbdOption.StructuredReply, []))[^1].Type);
            client.Structured = true;
            if (metaContext)
            {
                var replies = await client.OptionAsync(NbdOption.SetMetaContext, NbdTestWire.EncodeMetaContextQuery(export, "base:allocation"));
                Assert.Equal([NbdOptionReply.MetaContext, NbdOptionReply.Ack], replies.Select(r => r.Type));
            }
        }

        var go = await client.OptionAsync(NbdOption.Go, NbdTestWire.EncodeExportQuery(export, NbdInfoType.BlockSize));
        Assert.Equal(NbdOptionReply.Ack, go[^1].Type);
        var info = go.Single(r => r.Type == NbdOptionReply.Info && BinaryPrimitives.ReadUInt16BigEndian(r.Data) == (ushort)NbdInfoType.Export).Data;
        client.Size = BinaryPrimitives.ReadUInt64BigEndian(info.AsSpan(2));
        client.Flags = (NbdTransmissionFlags)BinaryPrimitives.ReadUInt16BigEndian(info.AsSpan(10));
        return client;
    }

    public static byte[] ClientFlags(uint flags)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, flags);
        return bytes;
    }

    public async Task ReadGreetingAsync()
    {
        var greeting = await ReceiveAsync(NbdWire.GreetingSize);
        Assert.Equal(NbdWire.InitMagic, BinaryPrimitives.ReadUInt64BigEndian(greeting));
        Assert.Equal(NbdWire.OptionMagic, BinaryPrimitives.ReadUInt64BigEndian(greeting.AsSpan(8)));
        Assert.Equal(NbdWire.FlagFixedNewstyle | NbdWire.FlagNoZeroes, BinaryPrimitives.ReadUInt16BigEndian(greeting.AsSpan(16)));
    }

    public async Task SendAsync(byte[] bytes) => await _stream.WriteAsync(bytes, Ct);

    public async Task<byte[]> ReceiveAsync(int length)
    {
        var bytes = new byte[length];
        await _stream.ReadExactlyAsync(bytes, Ct);
        return bytes;
    }

    /// <summary>Sends an option and reads its replies up to the final one (an ACK or an error).</summary>
    public async Task<List<(NbdOptionReply Type, byte[] Data)>> OptionAsync(NbdOption option, byte[] data) =>
        await OptionAsync((uint)option, data);

    public async Task<List<(NbdOptionReply Type, byte[] Data)>> OptionAsync(uint option, byte[] data)
    {
        await SendAsync(NbdTestWire.EncodeOption(option, data));
        var replies = new List<(NbdOptionReply Type, byte[] Data)>();
        while (true)
        {
            var header = await ReceiveAsync(NbdWire.OptionReplyHeaderSize);
            Assert.Equal(NbdWire.OptionReplyMagic, BinaryPrimitives.ReadUInt64BigEndian(header));
            Assert.Equal(option, BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(8)));
            var type = (NbdOptionReply)BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(12));
            replies.Add((type, await ReceiveAsync((int)BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(16)))));
            if (type is not (NbdOptionReply.Server or NbdOptionReply.Info or NbdOptionReply.MetaContext))
            {
                return replies;
            }
        }
    }

    public async Task SendRequestAsync(NbdRequest request, byte[]? payload = null)
    {
        if (request.Command == NbdCommand.Read)
        {
            _reads[request.Cookie] = request.Length;
        }

        await SendAsync(payload is null ? NbdTestWire.Encode(request) : [.. NbdTestWire.Encode(request), .. payload]);
    }

    public async Task<TestReply> RequestAsync(NbdRequest request, byte[]? payload = null)
    {
        await SendRequestAsync(request, payload);
        var reply = await ReadReplyAsync();
        Assert.Equal(request.Cookie, reply.Cookie);
        return reply;
    }

    /// <summary>Reads until some request's reply is complete: a simple reply, or structured chunks up to the DONE flag.</summary>
    public async Task<TestReply> ReadReplyAsync()
    {
        while (true)
        {
            var magic = BinaryPrimitives.ReadUInt32BigEndian(await ReceiveAsync(4));
            if (magic == NbdWire.SimpleReplyMagic)
            {
                var rest = await ReceiveAsync(12);
                var error = BinaryPrimitives.ReadUInt32BigEndian(rest);
                var cookie = BinaryPrimitives.ReadUInt64BigEndian(rest.AsSpan(4));
                Assert.False(Structured && _reads.ContainsKey(cookie), "a simple reply to a read after structured replies were negotiated");
                var data = error == 0 && _reads.Remove(cookie, out var length) ? await ReceiveAsync((int)length) : null;
                _reads.Remove(cookie);
                return new TestReply(cookie, error, data);
            }

            Assert.True(Structured, $"reply magic 0x{magic:x8} without structured replies");
            Assert.Equal(NbdWire.StructuredReplyMagic, magic);
            var chunk = await ReceiveAsync(16);
            var flags = BinaryPrimitives.ReadUInt16BigEndian(chunk);
            var type = BinaryPrimitives.ReadUInt16BigEndian(chunk.AsSpan(2));
            var id = BinaryPrimitives.ReadUInt64BigEndian(chunk.AsSpan(4));
            var payload = await ReceiveAsync((int)BinaryPrimitives.ReadUInt32BigEndian(chunk.AsSpan(12)));
            var reply = _partial.Remove(id, out var earlier) ? earlier : new TestReply(id, 0);
            reply = type switch
            {
                NbdWire.ReplyTypeNone => reply,
                NbdWire.ReplyTypeOffsetData => reply with { Data = [.. reply.Data ?? [], .. payload.AsSpan(8)] },
                NbdWire.ReplyTypeBlockStatus => reply with { Extents = DecodeExtents(payload) },
                NbdWire.ReplyTypeError => reply with
                {
                    Error = BinaryPrimitives.ReadUInt32BigEndian(payload),
                    Message = Encoding.UTF8.GetString(payload.AsSpan(6, BinaryPrimitives.ReadUInt16BigEndian(payload.AsSpan(4)))),
                },
                _ => throw new InvalidDataException($"unexpected chunk type {type}"),
            };
            if ((flags & NbdWire.ReplyFlagDone) != 0)
            {
                _reads.Remove(id);
                return reply;
            }

            _partial[id] = reply;
        }
    }

    /// <summary>True when the server closed the connection: a read returns end of stream (or a reset) before the deadline.</summary>
    public async Task<bool> IsClosedByServerAsync()
    {
        var buffer = new byte[4096];
        try
        {
            while (true)
            {
                if (await _stream.ReadAsync(buffer, Ct) == 0)
                {
                    return true;
                }
            }
        }
        catch (IOException)
        {
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stream.DisposeAsync();
        _deadline.Dispose();
    }

    private static (uint Length, uint Flags)[] DecodeExtents(byte[] payload)
    {
        Assert.Equal(NbdWire.BaseAllocationContextId, BinaryPrimitives.ReadUInt32BigEndian(payload));
        var extents = new (uint, uint)[(payload.Length - 4) / 8];
        for (var i = 0; i < extents.Length; i++)
        {
            extents[i] = (BinaryPrimitives.ReadUInt32BigEndian(payload.AsSpan(4 + (8 * i))), BinaryPrimitives.ReadUInt32BigEndian(payload.AsSpan(8 + (8 * i))));
        }

        return extents;
    }
}
