using System.Buffers;
using System.Buffers.Binary;
using CsCheck;
using Ferry.Storage.Nbd;

namespace Ferry.Tests.Nbd;

/// <summary>Properties of the request and option parsers: round trips, segmentation, hostile bytes.</summary>
public sealed class NbdParserTests
{
    private static OperationStatus ParseRequest(ReadOnlySequence<byte> bytes, out NbdRequest request, out long consumed)
    {
        var reader = new SequenceReader<byte>(bytes);
        var status = NbdRequestParser.TryParse(ref reader, out request, out _);
        consumed = reader.Consumed;
        return status;
    }

    [Fact]
    public void Request_round_trips() =>
        NbdGen.Request.Sample(request =>
            ParseRequest(new ReadOnlySequence<byte>(NbdTestWire.Encode(request)), out var parsed, out var consumed) == OperationStatus.Done
            && parsed == request && consumed == NbdWire.RequestHeaderSize);

    [Fact]
    public void Request_parsing_ignores_segmentation_at_every_cut() =>
        NbdGen.Request.Sample(request =>
        {
            var bytes = NbdTestWire.Encode(request);
            for (var cut = 0; cut <= bytes.Length; cut++)
            {
                Assert.Equal(OperationStatus.Done, ParseRequest(NbdTestWire.Split(bytes, cut), out var parsed, out _));
                Assert.Equal(request, parsed);
            }
        });

    [Fact]
    public void Request_parsing_ignores_random_segmentation() =>
        Gen.Select(NbdGen.Request, Gen.Int[0, NbdWire.RequestHeaderSize].Array[0, 6]).Sample((request, cuts) =>
            ParseRequest(NbdTestWire.Split(NbdTestWire.Encode(request), cuts), out var parsed, out _) == OperationStatus.Done && parsed == request);

    [Fact]
    public void A_truncated_request_needs_more_data_and_consumes_nothing() =>
        Gen.Select(NbdGen.Request, Gen.Int[0, NbdWire.RequestHeaderSize - 1]).Sample((request, length) =>
            ParseRequest(new ReadOnlySequence<byte>(NbdTestWire.Encode(request).AsMemory(0, length)), out _, out var consumed) == OperationStatus.NeedMoreData
            && consumed == 0);

    [Fact]
    public void Random_bytes_never_throw_and_never_yield_a_request_that_was_not_there() =>
        Gen.Select(Gen.Byte.Array[0, 64], Gen.Bool).Sample((bytes, withMagic) =>
        {
            if (withMagic && bytes.Length >= 4)
            {
                BinaryPrimitives.WriteUInt32BigEndian(bytes, NbdWire.RequestMagic); // reach the fields, not just the magic check
            }

            var status = ParseRequest(new ReadOnlySequence<byte>(bytes), out var request, out var consumed);
            return status switch
            {
                OperationStatus.Done => consumed == NbdWire.RequestHeaderSize && NbdTestWire.Encode(request).AsSpan().SequenceEqual(bytes.AsSpan(0, NbdWire.RequestHeaderSize)),
                OperationStatus.NeedMoreData => bytes.Length < NbdWire.RequestHeaderSize && consumed == 0,
                _ => BinaryPrimitives.ReadUInt32BigEndian(bytes) != NbdWire.RequestMagic && consumed == 0,
            };
        });

    [Fact]
    public void A_wrong_request_magic_is_invalid()
    {
        var bytes = NbdTestWire.Encode(new NbdRequest(NbdCommand.Read, NbdCommandFlags.None, 1, 0, 512));
        bytes[0] ^= 0xff;
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes));

        Assert.Equal(OperationStatus.InvalidData, NbdRequestParser.TryParse(ref reader, out _, out var error));
        Assert.Equal(NbdParseError.BadMagic, error);
    }

    [Fact]
    public void Option_header_round_trips_at_every_cut() =>
        Gen.Select(Gen.UInt, Gen.Byte.Array[0, 8]).Sample((option, data) =>
        {
            var bytes = NbdTestWire.EncodeOption(option, data);
            for (var cut = 0; cut <= NbdWire.OptionHeaderSize; cut++)
            {
                var reader = new SequenceReader<byte>(NbdTestWire.Split(bytes, cut));
                Assert.Equal(OperationStatus.Done, NbdOptionParser.TryParseHeader(ref reader, out var header, out _));
                Assert.Equal(new NbdOptionHeader((NbdOption)option, (uint)data.Length), header);
                Assert.Equal(NbdWire.OptionHeaderSize, reader.Consumed);
            }
        });

    [Fact]
    public void Random_bytes_as_an_option_header_never_throw() =>
        Gen.Byte.Array[0, 32].Sample(bytes =>
        {
            var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes));
            var status = NbdOptionParser.TryParseHeader(ref reader, out _, out _);
            return status == OperationStatus.Done
                ? BinaryPrimitives.ReadUInt64BigEndian(bytes) == NbdWire.OptionMagic
                : reader.Consumed == 0;
        });

    [Fact]
    public void Export_query_round_trips_at_random_cuts() =>
        Gen.Select(NbdGen.ExportQuery, Gen.Int[0, 80].Array[0, 4]).Sample((query, cuts) =>
        {
            var reader = new SequenceReader<byte>(NbdTestWire.Split(NbdTestWire.EncodeExportQuery(query), cuts));
            return NbdOptionParser.TryParseExportQuery(ref reader, out var parsed, out _) == OperationStatus.Done && parsed == query;
        });

    [Fact]
    public void Export_query_ignores_unknown_information_requests()
    {
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(NbdTestWire.EncodeExportQuery("disk", NbdInfoType.Export, (NbdInfoType)77, NbdInfoType.BlockSize)));

        Assert.Equal(OperationStatus.Done, NbdOptionParser.TryParseExportQuery(ref reader, out var query, out _));
        Assert.Equal(new NbdExportQuery("disk", WantsName: false, WantsDescription: false, WantsBlockSize: true), query);
    }

    [Fact]
    public void Meta_context_query_round_trips_at_random_cuts() =>
        Gen.Select(NbdGen.MetaContextQuery, Gen.Int[0, 120].Array[0, 4]).Sample((query, cuts) =>
        {
            var reader = new SequenceReader<byte>(NbdTestWire.Split(NbdTestWire.EncodeMetaContextQuery(query.Name, query.Queries), cuts));
            return NbdOptionParser.TryParseMetaContextQuery(ref reader, out var parsed, out _) == OperationStatus.Done
                && parsed!.ExportName == query.Name && parsed.Queries.SequenceEqual(query.Queries);
        });

    [Theory]
    [InlineData(-1)] // one byte short
    [InlineData(1)] // one byte too many
    public void Option_data_of_the_wrong_length_is_invalid(int delta)
    {
        foreach (var data in new[] { NbdTestWire.EncodeExportQuery("disk", NbdInfoType.Name), NbdTestWire.EncodeMetaContextQuery("disk", "base:allocation") })
        {
            var bytes = new byte[data.Length + delta];
            data.AsSpan(0, Math.Min(data.Length, bytes.Length)).CopyTo(bytes);
            var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes));
            var status = data.Length > 30
                ? NbdOptionParser.TryParseMetaContextQuery(ref reader, out _, out var error)
                : NbdOptionParser.TryParseExportQuery(ref reader, out _, out error);
            Assert.Equal(OperationStatus.InvalidData, status);
            Assert.Equal(NbdParseError.BadLength, error);
        }
    }

    [Fact]
    public void Strings_that_are_not_utf8_or_too_long_are_invalid()
    {
        byte[] notUtf8 = [0, 0, 0, 2, 0xc3, 0x28, 0, 0];
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(notUtf8));
        Assert.Equal(OperationStatus.InvalidData, NbdOptionParser.TryParseExportQuery(ref reader, out _, out var error));
        Assert.Equal(NbdParseError.BadString, error);

        var tooLong = NbdTestWire.EncodeExportQuery(new string('a', NbdWire.MaxStringLength + 1));
        reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(tooLong));
        Assert.Equal(OperationStatus.InvalidData, NbdOptionParser.TryParseExportQuery(ref reader, out _, out error));
        Assert.Equal(NbdParseError.BadString, error);
    }

    [Fact]
    public void A_huge_meta_context_query_count_is_refused_before_allocating()
    {
        byte[] bytes = [0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff];
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes));

        Assert.Equal(OperationStatus.InvalidData, NbdOptionParser.TryParseMetaContextQuery(ref reader, out _, out var error));
        Assert.Equal(NbdParseError.BadLength, error);
    }

    [Fact]
    public void Random_option_data_never_throws() =>
        Gen.Byte.Array[0, 64].Sample(bytes =>
        {
            var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes));
            NbdOptionParser.TryParseExportQuery(ref reader, out _, out _);
            reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes));
            NbdOptionParser.TryParseMetaContextQuery(ref reader, out _, out _);
        });

    [Fact]
    public void Export_name_is_the_whole_option_data() =>
        Gen.Select(NbdGen.Name, Gen.Int[0, 40].Array[0, 3]).Sample((name, cuts) =>
        {
            var reader = new SequenceReader<byte>(NbdTestWire.Split(System.Text.Encoding.UTF8.GetBytes(name), cuts));
            return NbdOptionParser.TryParseExportName(ref reader, out var parsed, out _) == OperationStatus.Done && parsed == name && reader.End;
        });

    [Fact]
    public void Export_names_that_are_not_utf8_or_too_long_are_invalid()
    {
        foreach (var bytes in new[] { new byte[] { 0xff, 0xfe }, new byte[NbdWire.MaxStringLength + 1] })
        {
            var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes));
            Assert.Equal(OperationStatus.InvalidData, NbdOptionParser.TryParseExportName(ref reader, out _, out var error));
            Assert.Equal(NbdParseError.BadString, error);
        }
    }
}
