using CsCheck;
using Ferry.Cli;
using Ferry.Hypervisor;

namespace Ferry.Tests.Cli;

public class ParserTests
{
    [Theory]
    [InlineData("256", 256)]
    [InlineData("256M", 256)]
    [InlineData("256MiB", 256)]
    [InlineData("2G", 2048)]
    [InlineData("2g", 2048)]
    [InlineData("1T", 1024 * 1024)]
    public void Sizes_parse_to_MiB(string text, long expected) => Assert.Equal(expected, SizeParser.ParseMiB(text).Value);

    [Theory]
    [InlineData("")]
    [InlineData("-5")]
    [InlineData("0")]
    [InlineData("1.5G")]
    [InlineData("12X")]
    [InlineData("G")]
    [InlineData("99999999999999999999")]
    [InlineData("9999999999999999T")]
    public void Bad_sizes_are_invalid_arguments(string text) =>
        Assert.Equal(ErrorCode.InvalidArgument, SizeParser.ParseMiB(text).Error?.Code);

    [Theory]
    [InlineData("4096", 4096)]
    [InlineData("4K", 4096)]
    [InlineData("64M", 64L << 20)]
    [InlineData("10GiB", 10L << 30)]
    [InlineData("2T", 2L << 40)]
    public void Byte_sizes_parse_with_binary_units(string text, long expected) => Assert.Equal(expected, SizeParser.ParseBytes(text).Value);

    [Fact]
    public void Memory_must_be_whole_MiB() => Assert.NotNull(SizeParser.ParseMiB("1536K").Error);

    [Fact]
    public void Size_parsing_never_throws() =>
        Gen.String.Sample(text => { _ = SizeParser.ParseMiB(text); _ = SizeParser.ParseBytes(text); });

    [Fact]
    public void Disks_parse_with_their_settings()
    {
        Assert.Equal(new DiskSpec("/a.raw"), SpecParser.ParseDisk("/a.raw").Value);
        Assert.Equal(new DiskSpec("/a.qcow2", "qcow2", true), SpecParser.ParseDisk("/a.qcow2,format=qcow2,readonly").Value);
        Assert.Equal(DiskSpec.ForVolume("vol1", readOnly: true), SpecParser.ParseDisk("volume:vol1,readonly").Value);
        Assert.NotNull(SpecParser.ParseDisk("/a.raw,cache=none").Error);
        Assert.NotNull(SpecParser.ParseDisk(",format=raw").Error);
    }

    [Fact]
    public void Forwards_parse_with_an_optional_address()
    {
        Assert.Equal(new PortForward(8080, 80), SpecParser.ParseForward("8080:80").Value);
        Assert.Equal(new PortForward(2222, 22, "0.0.0.0"), SpecParser.ParseForward("0.0.0.0:2222:22").Value);
        Assert.NotNull(SpecParser.ParseForward("8080").Error);
        Assert.NotNull(SpecParser.ParseForward("a:b").Error);
        Assert.NotNull(SpecParser.ParseForward("host:1:2").Error);
        Assert.NotNull(SpecParser.ParseForward("-1:80").Error);
    }
}

public class DurationParserTests
{
    [Theory]
    [InlineData("90s", 90)]
    [InlineData("10m", 600)]
    [InlineData("10", 600)]
    [InlineData("2H", 7200)]
    [InlineData("7d", 7 * 86400)]
    public void Durations_parse_with_units(string text, int seconds) => Assert.Equal(TimeSpan.FromSeconds(seconds), DurationParser.Parse(text).Value);

    [Theory]
    [InlineData("")]
    [InlineData("s")]
    [InlineData("0s")]
    [InlineData("-5m")]
    [InlineData("1.5h")]
    [InlineData("3w")]
    [InlineData("400d")]
    [InlineData("99999999999d")]
    public void Bad_durations_are_invalid_arguments(string text) =>
        Assert.Equal(ErrorCode.InvalidArgument, DurationParser.Parse(text).Error?.Code);
}
