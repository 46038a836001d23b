using System.Text.Json;

namespace Ferry.Storage.Replication;

/// <summary>
/// The replication authority as one durable JSON file: every grant is written atomically and synced
/// before it is answered. Agents that share the file (hosts of one test machine) share the authority;
/// the cluster state replaces it with consensus.
/// </summary>
public sealed class FileReplicationAuthority(string path, TimeProvider time) : IReplicationAuthority, IDisposable
{
    private readonly SemaphoreSlim _lock = new(1, 1);

    public async Task<Result<ulong>> RecordPromotionAsync(Guid volumeId, string host, ulong epoch, CancellationToken ct)
    {
        return await ChangeAsync(record =>
        {
            var volume = record.Volume(volumeId);
            if (epoch <= volume.HighestEpoch)
            {
                return (Result<ulong>)FerryError.Conflict($"epoch {epoch} is not above {volume.HighestEpoch}, the highest already granted for this volume");
            }

            volume.HighestEpoch = epoch;
            volume.Primary = host;
            volume.Outdated.Remove(host); // the promoted copy is the reference from now on, forced or not
            return epoch;
        }, ct).ConfigureAwait(false);
    }

    public async Task<OutdateResult> OutdateAsync(OutdateRequest request, CancellationToken ct)
    {
        return await ChangeAsync(record =>
        {
            var volume = record.Volume(request.VolumeId);
            if (request.Epoch < volume.HighestEpoch)
            {
                return new OutdateResult(OutdateOutcome.Refused,
                    $"{request.ByHost} is primary at epoch {request.Epoch}, but epoch {volume.HighestEpoch} was granted to {volume.Primary}: it is stale");
            }

            // Two primaries that lost each other both ask: the first is granted, the other is stale from then on.
            if (volume.Outdated.TryGetValue(request.ByHost, out var own))
            {
                return new OutdateResult(OutdateOutcome.Refused,
                    $"{request.ByHost}'s own copy was marked Outdated by {own.ByHost} at epoch {own.Epoch} ({own.At:u}), which went on without it first");
            }

            volume.Outdated[request.PeerHost] = new OutdatedMark(request.PeerHost, request.ByHost, request.Epoch, time.GetUtcNow());
            return new OutdateResult(OutdateOutcome.Granted, $"{request.PeerHost}'s copy of '{request.VolumeName}' is marked Outdated");
        }, ct).ConfigureAwait(false);
    }

    public async Task ClearOutdatedAsync(Guid volumeId, string host, CancellationToken ct) =>
        await ChangeAsync(record => record.Volume(volumeId).Outdated.Remove(host), ct).ConfigureAwait(false);

    public async Task<OutdatedMark?> GetOutdatedAsync(Guid volumeId, string host, CancellationToken ct)
    {
        await _lock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var record = await LoadAsync(ct).ConfigureAwait(false);
            return record.Volumes.TryGetValue(volumeId, out var volume) && volume.Outdated.TryGetValue(host, out var mark) ? mark : null;
        }
        finally
        {
            _lock.Release();
        }
    }

    public void Dispose() => _lock.Dispose();

    private async Task<T> ChangeAsync<T>(Func<AuthorityRecord, T> change, CancellationToken ct)
    {
        await _lock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            // Other agents may share the file: read, change and replace it under an exclusive lock file.
            using var exclusive = await LockFileAsync(ct).ConfigureAwait(false);
            var record = await LoadAsync(ct).ConfigureAwait(false);
            var result = change(record);
            await DurableFile.WriteAllBytesAsync(path, JsonSerializer.SerializeToUtf8Bytes(record, FerryJson.Options), ct).ConfigureAwait(false);
            return result;
        }
        finally
        {
            _lock.Release();
        }
    }

    private async Task<FileStream> LockFileAsync(CancellationToken ct)
    {
        while (true)
        {
            try
            {
                return new FileStream(path + ".lock", FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException)
            {
                await Task.Delay(10, ct).ConfigureAwait(false);
            }
        }
    }

    private async Task<AuthorityRecord> LoadAsync(CancellationToken ct)
    {
        if (!File.Exists(path))
        {
            return new AuthorityRecord();
        }

        await using var stream = File.OpenRead(path);
        return await JsonSerializer.DeserializeAsync<AuthorityRecord>(stream, FerryJson.Options, ct).ConfigureAwait(false) ?? new AuthorityRecord();
    }

    private sealed class AuthorityRecord
    {
        public Dictionary<Guid, VolumeRecord> Volumes { get; init; } = [];

        public VolumeRecord Volume(Guid id) => Volumes.TryGetValue(id, out var v) ? v : Volumes[id] = new VolumeRecord();
    }

    private sealed class VolumeRecord
    {
        public ulong HighestEpoch { get; set; }

        public string? Primary { get; set; }

        public Dictionary<string, OutdatedMark> Outdated { get; init; } = new(StringComparer.Ordinal);
    }
}
