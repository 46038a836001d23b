using System.Collections.Concurrent;
using System.Text.Json;

namespace Ferry.Agent.Vms;

/// <summary>Keeps each VM's record as vms/NAME/vm.json, replaced atomically on every change.</summary>
public sealed class FileVmRegistry : IVmRegistry, IDisposable
{
    public const string RecordFile = "vm.json";

    private readonly string _directory;
    private readonly ConcurrentDictionary<string, VmRecord> _records = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _writeLock = new(1, 1);

    private FileVmRegistry(string directory) => _directory = directory;

    public static FileVmRegistry Load(string directory)
    {
        Directory.CreateDirectory(directory);
        var registry = new FileVmRegistry(directory);
        foreach (var vmDirectory in Directory.EnumerateDirectories(directory))
        {
            var file = Path.Combine(vmDirectory, RecordFile);
            if (File.Exists(file))
            {
                var record = JsonSerializer.Deserialize<VmRecord>(File.ReadAllBytes(file), FerryJson.Options)
                    ?? throw new InvalidDataException($"VM record '{file}' is empty");
                registry._records[record.Name] = record;
            }
        }

        return registry;
    }

    public string DirectoryOf(string name) => Path.Combine(_directory, name);

    public IReadOnlyList<VmRecord> List() => [.. _records.Values.OrderBy(r => r.Name, StringComparer.Ordinal)];

    public VmRecord? Find(string name) => _records.GetValueOrDefault(name);

    public async Task<FerryError?> AddAsync(VmRecord record, CancellationToken ct)
    {
        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_records.ContainsKey(record.Name))
            {
                return FerryError.Conflict($"a VM named '{record.Name}' already exists");
            }

            await WriteAsync(record, ct).ConfigureAwait(false);
            _records[record.Name] = record;
            return null;
        }
        finally
        {
            _writeLock.Release();
        }
    }

    public async Task UpdateAsync(VmRecord record, CancellationToken ct)
    {
        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            await WriteAsync(record, ct).ConfigureAwait(false);
            _records[record.Name] = record;
        }
        finally
        {
            _writeLock.Release();
        }
    }

    public async Task RemoveAsync(string name, CancellationToken ct)
    {
        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            // The record goes first: a crash half way leaves a directory without a record, which is ignored.
            var vmDirectory = DirectoryOf(name);
            File.Delete(Path.Combine(vmDirectory, RecordFile));
            DurableFile.SyncDirectory(vmDirectory);
            _records.TryRemove(name, out _);
            Directory.Delete(vmDirectory, recursive: true);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private Task WriteAsync(VmRecord record, CancellationToken ct) =>
        DurableFile.WriteAllBytesAsync(
            Path.Combine(DirectoryOf(record.Name), RecordFile),
            JsonSerializer.SerializeToUtf8Bytes(record, FerryJson.Options),
            ct);

    public void Dispose() => _writeLock.Dispose();
}
