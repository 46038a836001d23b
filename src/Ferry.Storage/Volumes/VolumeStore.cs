using System.Collections.Concurrent;
using Ferry.Storage.Replication.Wire;
using Microsoft.Extensions.Logging;

namespace Ferry.Storage.Volumes;

/// <summary>
/// The volumes of this host, one directory each (volumes/NAME/{data,meta}): a sparse data file and
/// its metadata file. Create, resize and delete are durable and all-or-nothing.
/// </summary>
public sealed partial class VolumeStore : IDisposable
{
    public const string DataFileName = "data";
    public const string MetadataFileName = "meta";

    /// <summary>Sizes are whole bitmap blocks, so every byte of a volume is tracked by some dirty bit.</summary>
    public const long SizeGranularity = Superblock.DefaultBitmapBlockSize;

    /// <summary>Far above any real disk; beyond it a size is a typo.</summary>
    public const long MaxSize = 1L << 50;

    private readonly string _directory;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, Volume> _volumes = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _changeLock = new(1, 1);

    private VolumeStore(string directory, TimeProvider time, ILogger logger)
    {
        _directory = directory;
        _time = time;
        _logger = logger;
    }

    public static VolumeStore Open(string directory, TimeProvider time, ILogger logger)
    {
        Directory.CreateDirectory(directory);
        var store = new VolumeStore(directory, time, logger);
        foreach (var volumeDirectory in Directory.EnumerateDirectories(directory))
        {
            var meta = Path.Combine(volumeDirectory, MetadataFileName);
            if (!File.Exists(meta))
            {
                continue; // A create that did not finish; nothing refers to it.
            }

            if (!MetadataFile.Open(meta).TryGetValue(out var metadata, out var error))
            {
                LogUnreadable(logger, volumeDirectory, error.Message);
                continue;
            }

            var volume = OpenVolume(volumeDirectory, metadata);
            store._volumes[volume.Name] = volume;
        }

        return store;
    }

    public IReadOnlyList<Volume> Volumes => [.. _volumes.Values.OrderBy(v => v.Name, StringComparer.Ordinal)];

    public bool TryGet(string name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out Volume? volume) =>
        _volumes.TryGetValue(name, out volume);

    public async Task<Result<VolumeInfo>> InfoAsync(string name, CancellationToken ct) =>
        TryGet(name, out var volume) ? await InfoAsync(volume, ct).ConfigureAwait(false) : NotFound(name);

    public async Task<IReadOnlyList<VolumeInfo>> ListAsync(CancellationToken ct)
    {
        var list = new List<VolumeInfo>();
        foreach (var volume in Volumes)
        {
            list.Add(await InfoAsync(volume, ct).ConfigureAwait(false));
        }

        return list;
    }

    /// <summary>
    /// Creates a volume, or with <paramref name="copyOf"/> a new, empty copy of an existing volume (same id)
    /// that holds no data until a resync from the primary fills it.
    /// </summary>
    public Task<Result<VolumeInfo>> CreateAsync(string name, long size, CancellationToken ct, Guid? copyOf = null) =>
        CreateAsync(name, size, copyOf is { } id ? new VolumeSeed(id, default, DiskState.Inconsistent) : new VolumeSeed(null, default, DiskState.UpToDate), ct);

    /// <summary>
    /// Creates one of a new volume's copies, all made empty at once and so identical: each starts UpToDate
    /// with the volume's id and the same first generation, and the copies need no first sync.
    /// </summary>
    public Task<Result<VolumeInfo>> CreateSeededAsync(string name, long size, Guid id, ulong generation, CancellationToken ct) =>
        CreateAsync(name, size, new VolumeSeed(id, new GenerationIds(generation, 0, 0, 0), DiskState.UpToDate), ct);

    private async Task<Result<VolumeInfo>> CreateAsync(string name, long size, VolumeSeed seed, CancellationToken ct)
    {
        if (!ResourceName.IsValid(name))
        {
            return FerryError.InvalidArgument($"invalid volume name '{name}': {ResourceName.Rule}");
        }

        if (CheckSize(name, size) is { } sizeError)
        {
            return sizeError;
        }

        await _changeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_volumes.ContainsKey(name))
            {
                return FerryError.Conflict($"a volume named '{name}' already exists");
            }

            if (seed.Id is { } id && _volumes.Values.FirstOrDefault(v => v.Metadata.Current.VolumeId == id) is { } existing)
            {
                return FerryError.Conflict($"this host already holds a copy of volume {id} ('{existing.Name}')");
            }

            var volumeDirectory = Path.Combine(_directory, name);
            try
            {
                var volume = CreateOnDisk(volumeDirectory, name, size, seed);
                _volumes[name] = volume;
                return await InfoAsync(volume, ct).ConfigureAwait(false);
            }
            catch (IOException e)
            {
                // All or nothing: a volume that could not be made completely is removed again.
                DeleteDirectory(volumeDirectory);
                return FerryError.Environment($"cannot create volume '{name}': {e.Message}");
            }
        }
        finally
        {
            _changeLock.Release();
        }
    }

    /// <summary>Changes a volume's size; shrinking discards the data past the new end and must be asked for.</summary>
    public async Task<Result<VolumeInfo>> ResizeAsync(string name, long size, bool allowShrink, CancellationToken ct)
    {
        if (CheckSize(name, size) is { } sizeError)
        {
            return sizeError;
        }

        await _changeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (!TryGet(name, out var volume))
            {
                return NotFound(name);
            }

            var current = volume.Size;
            if (size < current && !allowShrink)
            {
                return FerryError.InvalidArgument(
                    $"cannot shrink volume '{name}' from {current} to {size} bytes without --shrink: the data past the new end would be lost");
            }

            // Growing: file first, then the superblock; shrinking: the other way round. Either way a
            // crash in between leaves a data file at least as long as the superblock says, which
            // Open() trims back to the superblock's size.
            if (size > current)
            {
                volume.SetDataLength(size);
                volume.Metadata.Update(s => s with { Size = size });
            }
            else if (size < current)
            {
                volume.Metadata.Update(s => s with { Size = size });
                volume.SetDataLength(size);
            }

            return await InfoAsync(volume, ct).ConfigureAwait(false);
        }
        finally
        {
            _changeLock.Release();
        }
    }

    public async Task<FerryError?> DeleteAsync(string name, CancellationToken ct)
    {
        await _changeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (!_volumes.TryRemove(name, out var volume))
            {
                return NotFound(name);
            }

            volume.Dispose();

            // The metadata goes first: a crash half way leaves a directory without it, which Open() ignores.
            File.Delete(Path.Combine(volume.Directory, MetadataFileName));
            DurableFile.SyncDirectory(volume.Directory);
            DeleteDirectory(volume.Directory);
            return null;
        }
        finally
        {
            _changeLock.Release();
        }
    }

    private Volume CreateOnDisk(string volumeDirectory, string name, long size, VolumeSeed seed)
    {
        if (Directory.Exists(volumeDirectory))
        {
            DeleteDirectory(volumeDirectory); // Left by a create that crashed before writing its metadata.
        }

        Directory.CreateDirectory(volumeDirectory);
        using (var data = File.OpenHandle(Path.Combine(volumeDirectory, DataFileName), FileMode.CreateNew, FileAccess.ReadWrite))
        {
            RandomAccess.SetLength(data, size); // sparse: allocates nothing
            RandomAccess.FlushToDisk(data);
        }

        // The metadata file is written last: its presence is what makes the volume exist.
        var generations = seed.Id is null ? new GenerationIds((ulong)Random.Shared.NextInt64(1, long.MaxValue), 0, 0, 0) : seed.Generations;
        var metadata = MetadataFile.Create(Path.Combine(volumeDirectory, MetadataFileName), new Superblock
        {
            VolumeId = seed.Id ?? Guid.NewGuid(),
            Name = name,
            Size = size,
            CreatedAt = _time.GetUtcNow(),
            Generations = generations,
            Disk = seed.Disk,
        });
        DurableFile.SyncDirectory(volumeDirectory);
        DurableFile.SyncDirectory(_directory);
        return OpenVolume(volumeDirectory, metadata);
    }

    private static Volume OpenVolume(string volumeDirectory, MetadataFile metadata)
    {
        var dataPath = Path.Combine(volumeDirectory, DataFileName);
        var size = metadata.Current.Size;
        if (new FileInfo(dataPath).Length != size)
        {
            // A resize was interrupted; the superblock is the truth.
            using var handle = File.OpenHandle(dataPath, FileMode.Open, FileAccess.ReadWrite);
            RandomAccess.SetLength(handle, size);
        }

        return new Volume(volumeDirectory, metadata, FileBlockDevice.Open(dataPath, readOnly: false));
    }

    private static async Task<VolumeInfo> InfoAsync(Volume volume, CancellationToken ct)
    {
        var s = volume.Metadata.Current;
        return new VolumeInfo(
            s.Name, s.VolumeId, s.Size, await volume.AllocatedBytesAsync(ct).ConfigureAwait(false), s.Generations, s.HighestEpoch, s.CreatedAt, volume.DataPath,
            new CopyState(s.Disk, CopyRole.Primary, ConnectionState.StandAlone));
    }

    private static FerryError? CheckSize(string name, long size) =>
        size <= 0 || size > MaxSize
            ? FerryError.InvalidArgument($"invalid size {size} for volume '{name}': must be between 4 KiB and 1 PiB")
            : size % SizeGranularity != 0
                ? FerryError.InvalidArgument($"invalid size {size} for volume '{name}': must be a multiple of 4 KiB")
                : null;

    private static FerryError NotFound(string name) => FerryError.NotFound($"no volume named '{name}' (see: ferry volume list)");

    private static void DeleteDirectory(string directory)
    {
        if (Directory.Exists(directory))
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [LoggerMessage(2000, LogLevel.Error, "volume directory {VolumeDirectory} is unreadable and was skipped: {Reason}")]
    private static partial void LogUnreadable(ILogger logger, string volumeDirectory, string reason);

    public void Dispose()
    {
        foreach (var volume in _volumes.Values)
        {
            volume.Dispose();
        }

        _changeLock.Dispose();
    }

    /// <summary>What a new copy starts as: its volume's id (null: a new volume), generations and disk state.</summary>
    private readonly record struct VolumeSeed(Guid? Id, GenerationIds Generations, DiskState Disk);
}
