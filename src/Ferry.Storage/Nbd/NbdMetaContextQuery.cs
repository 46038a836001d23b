namespace Ferry.Storage.Nbd;

/// <summary>The data of NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT.</summary>
internal sealed record NbdMetaContextQuery(string ExportName, IReadOnlyList<string> Queries);
