namespace Ferry.Storage.Nbd;

/// <summary>One export: the name clients ask for, a description shown to humans, and the device behind it.</summary>
public sealed record NbdExport(string Name, string Description, IBlockDevice Device);
