using System.Text.Json;

namespace Ferry.Lab;

/// <summary>What a lab's record keeps: enough to rebuild its <see cref="LabLayout"/>.</summary>
/// <param name="HostMemoryMiB">Memory each host's agent tells placement it has (null: the machine's).</param>
public sealed record LabRecord(string Name, int Network, int Nodes, string Directory, long? HostMemoryMiB = null)
{
    public Result<LabLayout> Layout() => LabLayout.Create(Name, Network, Nodes, Directory, HostMemoryMiB);
}

/// <summary>
/// The labs on this machine, one JSON record each under /run/ferry/labs (gone at reboot, as are the
/// namespaces). Creating a record claims the lab's name and the lowest free network number under a
/// lock, so labs brought up at the same time never share addresses.
/// </summary>
public sealed class LabRegistry(string directory)
{
    public static LabRegistry Default { get; } = new("/run/ferry/labs");

    public Result<LabRecord> Get(string name)
    {
        if (LabLayout.ValidateName(name) is { } invalid)
        {
            return invalid;
        }

        var path = RecordPath(name);
        return File.Exists(path)
            ? JsonSerializer.Deserialize<LabRecord>(File.ReadAllText(path), FerryJson.Options)!
            : FerryError.NotFound($"there is no lab '{name}' (see: ferry lab list)");
    }

    public IReadOnlyList<LabRecord> List() =>
        Directory.Exists(directory)
            ? Directory.EnumerateFiles(directory, "*.json")
                .Select(path => JsonSerializer.Deserialize<LabRecord>(File.ReadAllText(path), FerryJson.Options)!)
                .OrderBy(r => r.Name, StringComparer.Ordinal)
                .ToArray()
            : [];

    public async Task<Result<LabRecord>> ClaimAsync(string name, int nodes, string labDirectory, CancellationToken ct, long? hostMemoryMiB = null)
    {
        if (LabLayout.ValidateName(name) is { } invalid)
        {
            return invalid;
        }

        Directory.CreateDirectory(directory);
        await using var exclusive = await LockAsync(ct).ConfigureAwait(false);
        if (File.Exists(RecordPath(name)))
        {
            return FerryError.Conflict($"lab '{name}' exists already (remove it with: ferry lab down --lab {name})");
        }

        var used = List().Select(r => r.Network).ToHashSet();
        var network = Enumerable.Range(1, LabLayout.MaxNetwork).FirstOrDefault(n => !used.Contains(n));
        if (network == 0)
        {
            return FerryError.Unavailable($"{LabLayout.MaxNetwork} labs exist already");
        }

        var record = new LabRecord(name, network, nodes, Path.GetFullPath(labDirectory), hostMemoryMiB);
        await File.WriteAllTextAsync(RecordPath(name), JsonSerializer.Serialize(record, FerryJson.Options), ct).ConfigureAwait(false);
        return record;
    }

    public void Release(string name) => File.Delete(RecordPath(name));

    private string RecordPath(string name) => Path.Combine(directory, name + ".json");

    /// <summary>An exclusive lock file (.NET takes an flock for FileShare.None), retried while another process holds it.</summary>
    private async Task<FileStream> LockAsync(CancellationToken ct)
    {
        var path = Path.Combine(directory, ".lock");
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (attempt < 200)
            {
                await Task.Delay(50, ct).ConfigureAwait(false);
            }
        }
    }
}
