using System.Diagnostics.CodeAnalysis;
using Ferry.Storage.Nbd;
using Ferry.Storage.Volumes;

namespace Ferry.Agent.Volumes;

/// <summary>Every volume of this host is an NBD export of the same name.</summary>
internal sealed class VolumeExports(VolumeStore store) : INbdExportProvider
{
    public bool TryOpen(string name, [NotNullWhen(true)] out NbdExport? export)
    {
        export = store.TryGet(name, out var volume) ? Export(volume) : null;
        return export is not null;
    }

    public IReadOnlyList<NbdExport> List() => [.. store.Volumes.Select(Export)];

    private static NbdExport Export(Volume volume) => new(volume.Name, $"Ferry volume {volume.Name}", volume);
}
