namespace Ferry.Storage.Nbd;

/// <summary>The data of NBD_OPT_INFO and NBD_OPT_GO: an export name and which optional information the client wants.</summary>
internal readonly record struct NbdExportQuery(string ExportName, bool WantsName, bool WantsDescription, bool WantsBlockSize);
