using System.Diagnostics.CodeAnalysis;

namespace Ferry.Storage.Nbd;

/// <summary>The exports an <see cref="NbdServer"/> offers; consulted on every option that names an export.</summary>
public interface INbdExportProvider
{
    /// <summary>Finds an export by the name a client asked for ("" is the default export, if there is one).</summary>
    [SuppressMessage("Naming", "CA1716:Identifiers should not match keywords", Justification = "The export is what is being found; the API is for C#.")]
    bool TryOpen(string name, [NotNullWhen(true)] out NbdExport? export);

    /// <summary>The exports NBD_OPT_LIST shows.</summary>
    IReadOnlyList<NbdExport> List();
}
