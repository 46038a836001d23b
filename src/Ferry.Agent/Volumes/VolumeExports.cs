using System.Diagnostics.CodeAnalysis;
using Ferry.Storage.Nbd;
using Ferry.Storage.Replication;
using Ferry.Storage.Replication.Wire;

namespace Ferry.Agent.Volumes;

/// <summary>Every volume whose copy here is primary is an NBD export of the same name; a secondary copy is not served.</summary>
internal sealed class VolumeExports(VolumeReplication replication, Ferry.Storage.Volumes.VolumeStore store) : INbdExportProvider
{
    public bool TryOpen(string name, [NotNullWhen(true)] out NbdExport? export)
    {
        export = replication.TryGet(name, out var copy) && copy.Settings.Role == CopyRole.Primary ? Export(copy) : null;
        return export is not null;
    }

    public IReadOnlyList<NbdExport> List() =>
        [.. store.Volumes.Select(v => replication.TryGet(v.Name, out var copy) && copy.Settings.Role == CopyRole.Primary ? Export(copy) : null).OfType<NbdExport>()];

    private static NbdExport Export(ReplicatedVolume copy) => new(copy.Name, $"Ferry volume {copy.Name}", copy);
}
