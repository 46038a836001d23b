using Ferry.Storage.Replication;
using Microsoft.Extensions.Time.Testing;

namespace Ferry.Tests.Replication;

public sealed class FileReplicationAuthorityTests : IDisposable
{
    private static readonly Guid Volume = Guid.NewGuid();
    private readonly TempDirectory _directory = new();
    private readonly FileReplicationAuthority _authority;

    public FileReplicationAuthorityTests() =>
        _authority = new FileReplicationAuthority(Path.Combine(_directory.Path, "authority.json"), new FakeTimeProvider(DateTimeOffset.UnixEpoch));

    public void Dispose()
    {
        _authority.Dispose();
        _directory.Dispose();
    }

    [Fact]
    public async Task Epochs_only_go_up()
    {
        Assert.True((await _authority.RecordPromotionAsync(Volume, "host-a", 2, default)).IsOk);
        Assert.False((await _authority.RecordPromotionAsync(Volume, "host-b", 2, default)).IsOk);
        Assert.True((await _authority.RecordPromotionAsync(Volume, "host-b", 3, default)).IsOk);
    }

    [Fact]
    public async Task A_stale_primary_is_refused()
    {
        await _authority.RecordPromotionAsync(Volume, "host-a", 1, default);
        await _authority.RecordPromotionAsync(Volume, "host-b", 2, default);
        var result = await _authority.OutdateAsync(new OutdateRequest(Volume, "vol", "host-b", "host-a", 1), default);
        Assert.Equal(OutdateOutcome.Refused, result.Outcome);
        Assert.Null(await _authority.GetOutdatedAsync(Volume, "host-b", default));
    }

    [Fact]
    public async Task Of_two_primaries_that_lost_each_other_only_the_first_to_ask_goes_on()
    {
        await _authority.RecordPromotionAsync(Volume, "host-a", 1, default);
        var first = await _authority.OutdateAsync(new OutdateRequest(Volume, "vol", "host-b", "host-a", 1), default);
        var second = await _authority.OutdateAsync(new OutdateRequest(Volume, "vol", "host-a", "host-b", 1), default);

        Assert.Equal(OutdateOutcome.Granted, first.Outcome);
        Assert.Equal(OutdateOutcome.Refused, second.Outcome);
        Assert.Contains("marked Outdated by host-a", second.Reason, StringComparison.Ordinal);
        Assert.Null(await _authority.GetOutdatedAsync(Volume, "host-a", default));
    }

    [Fact]
    public async Task A_promotion_clears_the_promoted_copy_s_own_mark_so_it_can_outdate_others()
    {
        await _authority.RecordPromotionAsync(Volume, "host-a", 1, default);
        await _authority.OutdateAsync(new OutdateRequest(Volume, "vol", "host-b", "host-a", 1), default);
        await _authority.RecordPromotionAsync(Volume, "host-b", 2, default); // forced: host-b was Outdated

        Assert.Null(await _authority.GetOutdatedAsync(Volume, "host-b", default));
        var result = await _authority.OutdateAsync(new OutdateRequest(Volume, "vol", "host-a", "host-b", 2), default);
        Assert.Equal(OutdateOutcome.Granted, result.Outcome);
    }
}
