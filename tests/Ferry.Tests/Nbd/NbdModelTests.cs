using CsCheck;
using Ferry.Storage.Nbd;

namespace Ferry.Tests.Nbd;

/// <summary>
/// Model-based: random sequences of valid and invalid requests, pipelined in batches, through the server on a Unix
/// socket, checked against a byte array. Reads return what the model holds, invalid requests get the spec's error, and
/// the connection survives every recoverable error.
/// </summary>
public sealed class NbdModelTests
{
    private const int DiskSize = 64 << 10;

    /// <summary>One request; <see cref="Seed"/> fills a write's payload.</summary>
    public sealed record Op(ushort Command, ushort Flags, ulong Offset, uint Length, byte Seed)
    {
        public override string ToString() => $"{(NbdCommand)Command} {Offset}+{Length} flags 0x{Flags:x}";
    }

    private static readonly Gen<ulong> Offset = Gen.Frequency((6, Gen.ULong[0, DiskSize - 1]), (1, Gen.ULong[DiskSize - 16, DiskSize + 16]), (1, Gen.ULong));

    private static readonly Gen<uint> Length = Gen.Frequency((8, Gen.UInt[1, 9000]), (1, Gen.Const(0u)), (1, Gen.UInt[DiskSize - 16, DiskSize + 16]));

    private static readonly Gen<ushort> Command = Gen.Frequency(
        (6, Gen.Const((ushort)NbdCommand.Write)), (6, Gen.Const((ushort)NbdCommand.Read)), (2, Gen.Const((ushort)NbdCommand.Trim)),
        (2, Gen.Const((ushort)NbdCommand.WriteZeroes)), (1, Gen.Const((ushort)NbdCommand.Flush)), (1, Gen.Const((ushort)NbdCommand.Cache)),
        (2, Gen.Const((ushort)NbdCommand.BlockStatus)), (1, Gen.UShort[8, 300]));

    private static readonly Gen<ushort> Flags = Gen.Frequency(
        (8, Gen.Const((ushort)0)), (2, Gen.Const((ushort)NbdCommandFlags.Fua)), (1, Gen.Const((ushort)NbdCommandFlags.NoHole)),
        (1, Gen.Const((ushort)NbdCommandFlags.ReqOne)), (1, Gen.UShort));

    private static readonly Gen<Op> Operation = Gen.Select(Command, Flags, Offset, Length, Gen.Byte, (c, f, o, l, s) => new Op(c, f, o, l, s));

    [Fact]
    public async Task Random_request_sequences_match_the_model() =>
        await Gen.Select(Gen.Bool, Operation.Array[1, 40]).SampleAsync(RunAsync, iter: 60, threads: 1);

    private static async Task RunAsync(bool structured, Op[] ops)
    {
        await using var host = await NbdTestHost.StartAsync(DiskSize);
        await using var client = await host.OpenAsync(structured: structured);
        var model = new byte[DiskSize];
        var cookie = 0UL;
        for (var start = 0; start < ops.Length;)
        {
            // A batch is sent at once and may run in any order, so it holds no request that overlaps a change.
            var end = start + 1;
            while (end < ops.Length && end - start < 4 && !ops[start..end].Any(o => Conflict(o, ops[end])))
            {
                end++;
            }

            var batch = ops[start..end];
            var expected = new Dictionary<ulong, (Op Op, uint Error, byte[]? Data)>();
            foreach (var op in batch)
            {
                var request = new NbdRequest((NbdCommand)op.Command, (NbdCommandFlags)op.Flags, ++cookie, op.Offset, op.Length);
                var (error, data) = Expect(model, op, structured);
                expected[request.Cookie] = (op, error, data);
                await client.SendRequestAsync(request, request.Command == NbdCommand.Write && op.Length <= NbdWire.MaxPayload ? Payload(op) : null);
            }

            foreach (var _ in batch)
            {
                var reply = await client.ReadReplyAsync();
                Assert.True(expected.Remove(reply.Cookie, out var want), $"reply to unknown cookie {reply.Cookie}");
                Assert.True(want.Error == reply.Error, $"{want.Op}: expected error {want.Error}, got {reply.Error}");
                if (want.Data is not null)
                {
                    Assert.Equal(want.Data, reply.Data);
                }

                if (reply.Extents is { } extents)
                {
                    AssertExtentsMatch(model, want.Op, extents);
                }
            }

            start = end;
        }

        Assert.Equal(model, (await client.RequestAsync(new NbdRequest(NbdCommand.Read, 0, ++cookie, 0, DiskSize))).Data);
        Assert.Equal(model, host.Device.Data);
    }

    private static bool Changes(Op op) => (NbdCommand)op.Command is NbdCommand.Write or NbdCommand.Trim or NbdCommand.WriteZeroes;

    private static bool Conflict(Op a, Op b) =>
        (Changes(a) || Changes(b)) && a.Offset < b.Offset + b.Length && b.Offset < a.Offset + a.Length;

    private static byte[] Payload(Op op) => [.. Enumerable.Range(0, (int)op.Length).Select(i => (byte)(op.Seed + (i * 13)))];

    /// <summary>The spec's answer (proto.md "Request types", "Error values"), applied to the model when it succeeds.</summary>
    private static (uint Error, byte[]? Data) Expect(byte[] model, Op op, bool structured)
    {
        const uint EInval = 22, ENoSpc = 28;
        var command = (NbdCommand)op.Command;
        var flags = (NbdCommandFlags)op.Flags;
        var beyond = op.Offset > DiskSize || op.Length > DiskSize - op.Offset;
        var allowed = NbdCommandFlags.Fua | command switch
        {
            NbdCommand.Read when structured => NbdCommandFlags.DontFragment,
            NbdCommand.WriteZeroes => NbdCommandFlags.NoHole | NbdCommandFlags.FastZero,
            NbdCommand.BlockStatus => NbdCommandFlags.ReqOne,
            _ => NbdCommandFlags.None,
        };
        if ((flags & ~allowed) != 0 || command > NbdCommand.BlockStatus || command == NbdCommand.Disconnect)
        {
            return (EInval, null);
        }

        switch (command)
        {
            case NbdCommand.Read:
                return op.Length == 0 || beyond ? (EInval, null) : (0, model[(int)op.Offset..(int)(op.Offset + op.Length)]);
            case NbdCommand.Write:
                if (op.Length == 0)
                {
                    return (EInval, null);
                }

                if (beyond)
                {
                    return (ENoSpc, null);
                }

                Payload(op).CopyTo(model, (int)op.Offset);
                return (0, null);
            case NbdCommand.Trim or NbdCommand.WriteZeroes:
                if (beyond)
                {
                    return (command == NbdCommand.Trim ? EInval : ENoSpc, null);
                }

                Array.Clear(model, (int)op.Offset, (int)op.Length);
                return (0, null);
            case NbdCommand.Cache:
                return (beyond ? EInval : 0, null);
            case NbdCommand.BlockStatus:
                return (!structured || op.Length == 0 || beyond ? EInval : 0, null);
            default:
                return (0, null);
        }
    }

    /// <summary>Extents start at the offset, cover at most the request, and only claim zeroes where the model has them.</summary>
    private static void AssertExtentsMatch(byte[] model, Op op, (uint Length, uint Flags)[] extents)
    {
        Assert.NotEmpty(extents);
        if (((NbdCommandFlags)op.Flags & NbdCommandFlags.ReqOne) != 0)
        {
            Assert.Single(extents);
        }

        var offset = (int)op.Offset;
        foreach (var (length, flags) in extents)
        {
            Assert.True(length > 0);
            if ((flags & NbdWire.StateZero) != 0)
            {
                Assert.DoesNotContain(model.AsSpan(offset, (int)length).ToArray(), b => b != 0);
            }

            offset += (int)length;
        }

        Assert.True(offset <= (long)op.Offset + op.Length);
    }
}
