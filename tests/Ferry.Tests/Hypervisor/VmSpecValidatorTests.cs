using CsCheck;
using Ferry.Hypervisor;

namespace Ferry.Tests.Hypervisor;

public class VmSpecValidatorTests
{
    private const long HostMemoryMiB = 8192;
    private static readonly HashSet<string> Files = ["/images/disk.raw", "/boot/vmlinuz", "/boot/initrd"];

    private static VmSpec Valid => new()
    {
        Name = "web-1",
        Disks = [new DiskSpec("/images/disk.raw")],
        Nics = [new NicSpec { Forwards = [new PortForward(8080, 80)] }],
    };

    private static FerryError? Validate(VmSpec spec) => VmSpecValidator.Validate(spec, Files.Contains, v => v == "vol1", HostMemoryMiB);

    [Fact]
    public void A_valid_spec_passes() => Assert.Null(Validate(Valid));

    [Theory]
    [InlineData("127.0.0.1:8080/health")]
    [InlineData("ftp://127.0.0.1/health")]
    [InlineData("/health")]
    public void A_health_check_must_be_an_http_url(string url)
    {
        Assert.Contains("invalid health check", Validate(Valid with { HealthCheck = url })!.Message);
        Assert.Null(Validate(Valid with { HealthCheck = "http://127.0.0.1:8080/health" }));
    }

    [Theory]
    [InlineData("")]
    [InlineData("Web")]
    [InlineData("-web")]
    [InlineData("web_1")]
    [InlineData("a/b")]
    [InlineData("0123456789012345678901234567890123456789012345678901234567890123")]
    public void Bad_names_are_refused(string name) =>
        Assert.Equal(ErrorCode.InvalidArgument, Validate(Valid with { Name = name })?.Code);

    [Theory]
    [InlineData(-256)]
    [InlineData(0)]
    [InlineData(15)]
    [InlineData(HostMemoryMiB + 1)]
    [InlineData(long.MaxValue)]
    public void Negative_tiny_or_absurd_memory_is_refused(long memory)
    {
        var error = Validate(Valid with { MemoryMiB = memory });
        Assert.Equal(ErrorCode.InvalidArgument, error?.Code);
        Assert.Contains("memory", error!.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(257)]
    public void Bad_vcpu_counts_are_refused(int vcpus) =>
        Assert.Equal(ErrorCode.InvalidArgument, Validate(Valid with { VCpus = vcpus })?.Code);

    [Fact]
    public void A_missing_disk_file_is_named_in_the_error()
    {
        var error = Validate(Valid with { Disks = [new DiskSpec("/images/missing.raw")] });
        Assert.Equal(ErrorCode.InvalidArgument, error?.Code);
        Assert.Contains("/images/missing.raw", error!.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_kernel_or_initrd_is_refused()
    {
        Assert.NotNull(Validate(Valid with { Kernel = new KernelBoot("/boot/none") }));
        Assert.NotNull(Validate(Valid with { Kernel = new KernelBoot("/boot/vmlinuz", "/boot/none") }));
        Assert.Null(Validate(Valid with { Kernel = new KernelBoot("/boot/vmlinuz", "/boot/initrd", "console=ttyS0") }));
    }

    [Fact]
    public void A_volume_disk_must_exist_be_raw_and_not_also_name_a_file()
    {
        Assert.Null(Validate(Valid with { Disks = [DiskSpec.ForVolume("vol1")] }));
        Assert.Contains("no volume named 'vol2'", Validate(Valid with { Disks = [DiskSpec.ForVolume("vol2")] })!.Message, StringComparison.Ordinal);
        Assert.NotNull(Validate(Valid with { Disks = [new DiskSpec(null, "qcow2", Volume: "vol1")] }));
        Assert.NotNull(Validate(Valid with { Disks = [new DiskSpec("/images/disk.raw", Volume: "vol1")] }));
    }

    [Fact]
    public void A_vm_with_nothing_to_boot_is_refused() =>
        Assert.NotNull(Validate(Valid with { Disks = [] }));

    [Fact]
    public void Nic_mistakes_are_refused()
    {
        Assert.NotNull(Validate(Valid with { Nics = [new NicSpec { Mode = NicMode.Bridge }] }));
        Assert.NotNull(Validate(Valid with { Nics = [new NicSpec { Mode = NicMode.Bridge, Bridge = "br0", Forwards = [new PortForward(1, 2)] }] }));
        Assert.NotNull(Validate(Valid with { Nics = [new NicSpec { Forwards = [new PortForward(0, 80)] }] }));
        Assert.NotNull(Validate(Valid with { Nics = [new NicSpec { Forwards = [new PortForward(8080, 80), new PortForward(8080, 22)] }] }));
        Assert.NotNull(Validate(Valid with { Nics = [new NicSpec { Mac = "52:54:00:zz:00:01" }] }));
        Assert.Null(Validate(Valid with { Nics = [new NicSpec { Mode = NicMode.Bridge, Bridge = "br0", Mac = "52:54:00:12:34:56" }] }));
    }

    [Fact]
    public void Any_memory_size_within_the_host_is_accepted_and_any_outside_refused() =>
        Gen.Long[-100_000, 100_000].Sample(memory =>
            (Validate(Valid with { MemoryMiB = memory }) is null) == (memory >= VmSpecValidator.MinMemoryMiB && memory <= HostMemoryMiB));
}
