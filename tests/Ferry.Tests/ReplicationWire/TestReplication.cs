using Ferry.Storage.Replication;
using Ferry.Storage.Replication.Wire;
using Ferry.Storage.Volumes;
using Microsoft.Extensions.Logging.Abstractions;

namespace Ferry.Tests.ReplicationWire;

/// <summary>Replication contexts for tests: copies that never dial out (secondaries driven through pipes), or dial as told.</summary>
internal static class TestReplication
{
    /// <summary>A store in <paramref name="directory"/> with volume "vol" of <paramref name="size"/> bytes, opened as a secondary copy that has seen epoch 5.</summary>
    public static async Task<(VolumeStore Store, Volume Volume, ReplicatedVolume Copy)> OpenSecondaryAsync(string directory, long size)
    {
        var store = VolumeStore.Open(directory, TimeProvider.System, NullLogger.Instance);
        await store.CreateAsync("vol", size, default);
        store.TryGet("vol", out var volume);
        volume!.Metadata.Update(s => s with { HighestEpoch = 5 });
        return (store, volume, ReplicatedVolume.Open(volume, new ReplicationSettings { Role = CopyRole.Secondary }, Context()));
    }

    public static ReplicationContext Context() => Context((_, _) => Task.FromException<Stream>(new IOException("tests do not dial peers")));

    /// <summary>A context whose links are made by <paramref name="connect"/>; the authority grants every promotion and outdating.</summary>
    public static ReplicationContext Context(Func<PeerAddress, CancellationToken, Task<Stream>> connect) =>
        new("test-host", new NoAuthority(), connect, TimeProvider.System, NullLogger.Instance);

    private sealed class NoAuthority : IReplicationAuthority
    {
        public Task<Result<ulong>> RecordPromotionAsync(Guid volumeId, string host, ulong epoch, CancellationToken ct) => Task.FromResult<Result<ulong>>(epoch);

        public Task<OutdateResult> OutdateAsync(OutdateRequest request, CancellationToken ct) =>
            Task.FromResult(new OutdateResult(OutdateOutcome.Granted, "test"));

        public Task ClearOutdatedAsync(Guid volumeId, string host, CancellationToken ct) => Task.CompletedTask;

        public Task<OutdatedMark?> GetOutdatedAsync(Guid volumeId, string host, CancellationToken ct) => Task.FromResult<OutdatedMark?>(null);
    }
}
