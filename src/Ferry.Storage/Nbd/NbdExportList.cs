using System.Diagnostics.CodeAnalysis;

namespace Ferry.Storage.Nbd;

/// <summary>A fixed set of exports, looked up by exact name.</summary>
public sealed class NbdExportList : INbdExportProvider
{
    private readonly NbdExport[] _exports;

    public NbdExportList(params IEnumerable<NbdExport> exports) => _exports = [.. exports];

    public bool TryOpen(string name, [NotNullWhen(true)] out NbdExport? export)
    {
        export = Array.Find(_exports, e => e.Name == name);
        return export is not null;
    }

    public IReadOnlyList<NbdExport> List() => _exports;
}
