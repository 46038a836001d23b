using Ferry.Storage.Replication;
using Microsoft.Extensions.Logging.Abstractions;

namespace Ferry.Tests.ReplicationWire;

/// <summary>A replication context for copies that never dial out (secondaries driven through pipes).</summary>
internal static class TestReplication
{
    public static ReplicationContext Context() => new(
        "test-host",
        new NoAuthority(),
        (_, _) => Task.FromException<Stream>(new IOException("tests do not dial peers")),
        TimeProvider.System,
        NullLogger.Instance);

    private sealed class NoAuthority : IReplicationAuthority
    {
        public Task<Result<ulong>> RecordPromotionAsync(Guid volumeId, string host, ulong epoch, CancellationToken ct) => Task.FromResult<Result<ulong>>(epoch);

        public Task<OutdateResult> OutdateAsync(OutdateRequest request, CancellationToken ct) =>
            Task.FromResult(new OutdateResult(OutdateOutcome.Granted, "test"));

        public Task ClearOutdatedAsync(Guid volumeId, string host, CancellationToken ct) => Task.CompletedTask;

        public Task<OutdatedMark?> GetOutdatedAsync(Guid volumeId, string host, CancellationToken ct) => Task.FromResult<OutdatedMark?>(null);
    }
}
