using System.Buffers.Binary;
using Ferry.Storage;
using Ferry.Storage.Nbd;

namespace Ferry.Tests.Nbd;

/// <summary>
/// Hostile or broken clients over a raw socket: each gets the protocol's error or a clean disconnect, and afterwards
/// the server still serves a new client and the data written before is intact.
/// </summary>
public sealed class NbdBadInputTests : IAsyncLifetime
{
    private static readonly byte[] Known = [.. Enumerable.Range(0, 8192).Select(i => (byte)(i * 31))];

    private NbdTestHost _host = null!;

    public async Task InitializeAsync()
    {
        _host = await NbdTestHost.StartAsync();
        Known.CopyTo(_host.Device.Data, 4096);
    }

    public async Task DisposeAsync() => await _host.DisposeAsync();

    private static NbdRequest Request(NbdCommand command, ulong offset, uint length, NbdCommandFlags flags = NbdCommandFlags.None, ulong cookie = 7) =>
        new(command, flags, cookie, offset, length);

    /// <summary>A fresh client can still read the data written before the bad one came.</summary>
    private async Task AssertStillServesAsync()
    {
        await using var client = await _host.OpenAsync();
        var reply = await client.RequestAsync(Request(NbdCommand.Read, 4096, (uint)Known.Length));
        Assert.Equal(0u, reply.Error);
        Assert.Equal(Known, reply.Data);
    }

    /// <summary>The device holds exactly what the test put there: zeroes, and the known pattern at 4 KiB.</summary>
    private void AssertDataIntact()
    {
        var expected = new byte[_host.Device.Size];
        Known.CopyTo(expected, 4096);
        Assert.Equal(expected, _host.Device.Data);
    }

    private async Task AssertDisconnectedAsync(NbdTestClient client)
    {
        Assert.True(await client.IsClosedByServerAsync(), "the server should have closed the connection");
        await AssertStillServesAsync();
    }

    private async Task<NbdTestClient> NegotiatingAsync()
    {
        var client = await _host.ConnectAsync();
        await client.ReadGreetingAsync();
        await client.SendAsync(NbdTestClient.ClientFlags(NbdWire.ClientFlagFixedNewstyle));
        return client;
    }

    [Theory]
    [InlineData(0u)] // non-fixed newstyle
    [InlineData(NbdWire.ClientFlagNoZeroes)] // non-fixed newstyle with NO_ZEROES
    [InlineData(NbdWire.ClientFlagFixedNewstyle | 4)] // a flag nobody defined
    public async Task Clients_that_are_not_fixed_newstyle_are_disconnected(uint flags)
    {
        await using var client = await _host.ConnectAsync();
        await client.ReadGreetingAsync();
        await client.SendAsync(NbdTestClient.ClientFlags(flags));

        await AssertDisconnectedAsync(client);
    }

    [Fact]
    public async Task A_transmission_request_instead_of_negotiation_is_disconnected()
    {
        await using var client = await _host.ConnectAsync();
        await client.SendAsync([.. NbdTestWire.Encode(Request(NbdCommand.Write, 4096, 512)), .. new byte[512]]);

        await client.ReadGreetingAsync();
        await AssertDisconnectedAsync(client);
    }

    [Fact]
    public async Task A_request_during_option_haggling_is_disconnected()
    {
        await using var client = await NegotiatingAsync();
        await client.SendAsync([.. NbdTestWire.Encode(Request(NbdCommand.Write, 4096, 16)), .. new byte[16]]);

        await AssertDisconnectedAsync(client);
    }

    [Fact]
    public async Task Garbage_is_disconnected()
    {
        await using var client = await NegotiatingAsync();
        await client.SendAsync([.. Enumerable.Range(0, 300).Select(i => (byte)(i * 7 + 3))]);

        await AssertDisconnectedAsync(client);
    }

    [Fact]
    public async Task A_client_vanishing_mid_option_leaves_the_server_serving()
    {
        await using (var client = await NegotiatingAsync())
        {
            var option = NbdTestWire.EncodeOption(NbdOption.Go, NbdTestWire.EncodeExportQuery("disk"));
            await client.SendAsync(option[..(option.Length - 3)]);
        }

        await AssertStillServesAsync();
    }

    [Fact]
    public async Task Unknown_options_are_unsupported_and_negotiation_continues()
    {
        await using var client = await NegotiatingAsync();

        Assert.Equal(NbdOptionReply.ErrUnsupported, (await client.OptionAsync(4242, [1, 2, 3]))[^1].Type);
        Assert.Equal(NbdOptionReply.ErrUnsupported, (await client.OptionAsync(11, []))[^1].Type); // EXTENDED_HEADERS: not offered
        Assert.Equal(NbdOptionReply.Ack, (await client.OptionAsync(NbdOption.Go, NbdTestWire.EncodeExportQuery("disk")))[^1].Type);
    }

    [Fact]
    public async Task Options_with_bad_data_are_invalid_and_negotiation_continues()
    {
        await using var client = await NegotiatingAsync();

        Assert.Equal(NbdOptionReply.ErrInvalid, (await client.OptionAsync(NbdOption.List, [0]))[^1].Type);
        Assert.Equal(NbdOptionReply.ErrInvalid, (await client.OptionAsync(NbdOption.StructuredReply, [0, 0]))[^1].Type);
        Assert.Equal(NbdOptionReply.ErrInvalid, (await client.OptionAsync(NbdOption.StartTls, [1]))[^1].Type);
        var go = NbdTestWire.EncodeExportQuery("disk", NbdInfoType.Name);
        Assert.Equal(NbdOptionReply.ErrInvalid, (await client.OptionAsync(NbdOption.Go, go[..^1]))[^1].Type);
        Assert.Equal(NbdOptionReply.ErrInvalid, (await client.OptionAsync(NbdOption.Info, [.. go, 0]))[^1].Type);
        BinaryPrimitives.WriteUInt32BigEndian(go, 1000); // name length beyond the option
        Assert.Equal(NbdOptionReply.ErrInvalid, (await client.OptionAsync(NbdOption.Go, go))[^1].Type);

        // Meta contexts need structured replies first.
        Assert.Equal(NbdOptionReply.ErrInvalid, (await client.OptionAsync(NbdOption.SetMetaContext, NbdTestWire.EncodeMetaContextQuery("disk", "base:allocation")))[^1].Type);
        Assert.Equal(NbdOptionReply.Ack, (await client.OptionAsync(NbdOption.Go, NbdTestWire.EncodeExportQuery("disk")))[^1].Type);
    }

    [Fact]
    public async Task An_oversized_option_is_skipped_and_refused()
    {
        await using var client = await NegotiatingAsync();

        Assert.Equal(NbdOptionReply.ErrTooBig, (await client.OptionAsync(NbdOption.Go, new byte[NbdWire.MaxOptionLength + 1]))[^1].Type);
        Assert.Equal(NbdOptionReply.Ack, (await client.OptionAsync(NbdOption.Go, NbdTestWire.EncodeExportQuery("disk")))[^1].Type);
    }

    [Fact]
    public async Task Unknown_exports_are_refused_by_go_and_info_and_disconnected_by_export_name()
    {
        await using (var client = await NegotiatingAsync())
        {
            Assert.Equal(NbdOptionReply.ErrUnknown, (await client.OptionAsync(NbdOption.Info, NbdTestWire.EncodeExportQuery("nope")))[^1].Type);
            Assert.Equal(NbdOptionReply.ErrUnknown, (await client.OptionAsync(NbdOption.Go, NbdTestWire.EncodeExportQuery("nope")))[^1].Type);
            await client.SendAsync(NbdTestWire.EncodeOption(NbdOption.ExportName, "nope"u8));
            await AssertDisconnectedAsync(client);
        }
    }

    [Fact]
    public async Task Abort_is_acknowledged_and_ends_the_session()
    {
        await using var client = await NegotiatingAsync();

        Assert.Equal(NbdOptionReply.Ack, (await client.OptionAsync(NbdOption.Abort, []))[^1].Type);
        await AssertDisconnectedAsync(client);
    }

    [Fact]
    public async Task Starttls_without_a_certificate_is_refused_by_policy()
    {
        await using var client = await NegotiatingAsync();

        Assert.Equal(NbdOptionReply.ErrPolicy, (await client.OptionAsync(NbdOption.StartTls, []))[^1].Type);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Invalid_requests_get_errors_and_the_connection_survives(bool structured)
    {
        await using var client = await _host.OpenAsync(structured: structured);
        var size = client.Size;
        (NbdRequest Request, NbdErrno Error)[] cases =
        [
            (Request((NbdCommand)99, 0, 512), NbdErrno.Invalid),
            (Request(NbdCommand.Read, 0, 512, (NbdCommandFlags)0x100), NbdErrno.Invalid),
            (Request(NbdCommand.Read, 0, 512, NbdCommandFlags.NoHole), NbdErrno.Invalid),
            (Request(NbdCommand.Read, 0, 0), NbdErrno.Invalid),
            (Request(NbdCommand.Read, size - 511, 512), NbdErrno.Invalid),
            (Request(NbdCommand.Read, ulong.MaxValue - 10, 512), NbdErrno.Invalid),
            (Request(NbdCommand.Read, 0, NbdWire.MaxPayload + 1), NbdErrno.Invalid), // beyond the 1 MiB export too
            (Request(NbdCommand.Trim, size, 1), NbdErrno.Invalid),
            (Request(NbdCommand.Cache, size - 1, 2), NbdErrno.Invalid),
            (Request(NbdCommand.WriteZeroes, size - 1, 2), NbdErrno.NoSpace),
            (Request(NbdCommand.WriteZeroes, 0, 2, NbdCommandFlags.ReqOne), NbdErrno.Invalid),
            (Request(NbdCommand.BlockStatus, 0, 0), NbdErrno.Invalid),
            (Request(NbdCommand.BlockStatus, size, 1), NbdErrno.Invalid),
        ];

        foreach (var (request, error) in cases)
        {
            var reply = await client.RequestAsync(request);
            Assert.True((uint)error == reply.Error, $"{request}: expected {error}, got {(NbdErrno)reply.Error}");
            Assert.Null(reply.Data);
            Assert.Equal(structured, reply.Message is not null);
        }

        Assert.Equal(Known, (await client.RequestAsync(Request(NbdCommand.Read, 4096, (uint)Known.Length))).Data);
    }

    [Fact]
    public async Task Block_status_without_a_meta_context_is_invalid()
    {
        await using var client = await _host.OpenAsync(structured: true, metaContext: false);

        Assert.Equal((uint)NbdErrno.Invalid, (await client.RequestAsync(Request(NbdCommand.BlockStatus, 0, 4096))).Error);
    }

    [Fact]
    public async Task A_read_over_the_maximum_payload_overflows()
    {
        await using var host = await NbdTestHost.StartAsync(size: 64 << 20);
        await using var client = await host.OpenAsync();

        Assert.Equal((uint)NbdErrno.Overflow, (await client.RequestAsync(Request(NbdCommand.Read, 0, NbdWire.MaxPayload + 1))).Error);
        Assert.Equal((uint)NbdWire.MaxPayload, (uint)(await client.RequestAsync(Request(NbdCommand.Read, 0, NbdWire.MaxPayload))).Data!.Length);
    }

    [Fact]
    public async Task A_write_past_the_end_is_refused_its_payload_skipped_and_nothing_written()
    {
        await using var client = await _host.OpenAsync();
        var payload = Enumerable.Repeat((byte)0xee, 4096).ToArray();

        var reply = await client.RequestAsync(Request(NbdCommand.Write, client.Size - 2048, 4096), payload);

        Assert.Equal((uint)NbdErrno.NoSpace, reply.Error);
        AssertDataIntact();
        Assert.Equal(0u, (await client.RequestAsync(Request(NbdCommand.Write, 0, 16, cookie: 8), new byte[16])).Error);
        await AssertStillServesAsync();
    }

    [Fact]
    public async Task A_write_with_a_bad_flag_or_no_length_is_invalid_and_its_payload_skipped()
    {
        await using var client = await _host.OpenAsync();

        Assert.Equal((uint)NbdErrno.Invalid, (await client.RequestAsync(Request(NbdCommand.Write, 4096, 64, NbdCommandFlags.ReqOne), new byte[64])).Error);
        Assert.Equal((uint)NbdErrno.Invalid, (await client.RequestAsync(Request(NbdCommand.Write, 4096, 0))).Error);
        await AssertStillServesAsync();
    }

    [Fact]
    public async Task A_write_over_the_maximum_payload_is_refused_and_disconnected()
    {
        await using var client = await _host.OpenAsync();

        var reply = await client.RequestAsync(Request(NbdCommand.Write, 0, NbdWire.MaxPayload + 1), new byte[4096]);

        Assert.Equal((uint)NbdErrno.Invalid, reply.Error);
        await AssertDisconnectedAsync(client);
    }

    [Fact]
    public async Task Writes_to_a_read_only_export_are_not_permitted()
    {
        await using var client = await _host.OpenAsync("ro");

        Assert.True((client.Flags & NbdTransmissionFlags.ReadOnly) != 0);
        Assert.Equal((uint)NbdErrno.Perm, (await client.RequestAsync(Request(NbdCommand.Write, 0, 512), new byte[512])).Error);
        Assert.Equal((uint)NbdErrno.Perm, (await client.RequestAsync(Request(NbdCommand.Trim, 0, 512))).Error);
        Assert.Equal((uint)NbdErrno.Perm, (await client.RequestAsync(Request(NbdCommand.WriteZeroes, 0, 512))).Error);
        Assert.Equal(0u, (await client.RequestAsync(Request(NbdCommand.Read, 0, 512))).Error);
    }

    [Fact]
    public async Task A_wrong_request_magic_is_disconnected_after_earlier_requests_are_answered()
    {
        await using var client = await _host.OpenAsync();
        var bad = NbdTestWire.Encode(Request(NbdCommand.Read, 0, 512, cookie: 2));
        bad[0] ^= 0x55;

        await client.SendRequestAsync(Request(NbdCommand.Read, 4096, 16, cookie: 1));
        await client.SendAsync(bad);

        Assert.Equal(Known[..16], (await client.ReadReplyAsync()).Data);
        await AssertDisconnectedAsync(client);
    }

    [Fact]
    public async Task A_client_vanishing_mid_write_writes_nothing()
    {
        await using (var client = await _host.OpenAsync())
        {
            await client.SendAsync(NbdTestWire.Encode(Request(NbdCommand.Write, 4096, 8192)));
            await client.SendAsync(Enumerable.Repeat((byte)0xee, 5000).ToArray());
        }

        await AssertStillServesAsync();
        AssertDataIntact();
    }

    [Fact]
    public async Task A_truncated_request_header_then_disconnect_leaves_the_server_serving()
    {
        await using (var client = await _host.OpenAsync())
        {
            await client.SendAsync(NbdTestWire.Encode(Request(NbdCommand.Read, 0, 512))[..13]);
        }

        await AssertStillServesAsync();
    }

    [Theory]
    [InlineData(BlockError.Io, 5u)] // EIO
    [InlineData(BlockError.NoSpace, 28u)] // ENOSPC
    [InlineData(BlockError.Invalid, 22u)] // EINVAL
    [InlineData(BlockError.NotSupported, 95u)] // ENOTSUP
    [InlineData(BlockError.ReadOnly, 1u)] // EPERM
    public async Task Device_errors_map_to_nbd_errors(BlockError failure, uint expected)
    {
        _host.Device.FailOffset = 65536;
        _host.Device.FailLength = 4096;
        _host.Device.FailWith = failure;
        await using var client = await _host.OpenAsync();

        Assert.Equal(expected, (await client.RequestAsync(Request(NbdCommand.Read, 65536, 512))).Error);
        Assert.Equal(expected, (await client.RequestAsync(Request(NbdCommand.Write, 65536, 512), new byte[512])).Error);
        Assert.Equal(expected, (await client.RequestAsync(Request(NbdCommand.WriteZeroes, 65536, 512, NbdCommandFlags.FastZero))).Error);
        Assert.Equal(expected, (await client.RequestAsync(Request(NbdCommand.BlockStatus, 65536, 512))).Error);
        await AssertStillServesAsync();
    }

    [Fact]
    public async Task Replies_go_out_of_order_while_a_request_is_in_flight()
    {
        _host.Device.GateOffset = 0;
        await using var client = await _host.OpenAsync();

        await client.SendRequestAsync(Request(NbdCommand.Read, 0, 512, cookie: 1)); // held by the device
        await client.SendRequestAsync(Request(NbdCommand.Read, 4096, 16, cookie: 2));
        await client.SendRequestAsync(Request(NbdCommand.Write, 8192, 4, cookie: 3), [1, 2, 3, 4]);

        // 2 and 3 run in parallel on the thread pool, so either may answer first; both come before 1.
        var early = new[] { await client.ReadReplyAsync(), await client.ReadReplyAsync() };
        _host.Device.Gate.SetResult();
        var first = await client.ReadReplyAsync();

        Assert.Equal([2UL, 3UL], early.Select(r => r.Cookie).Order());
        Assert.Equal(1UL, first.Cookie);
        Assert.Equal(Known[..16], early.Single(r => r.Cookie == 2).Data);
        Assert.Equal(512, first.Data!.Length);
    }
}
