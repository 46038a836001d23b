namespace Ferry.Storage.Nbd;

/// <summary>An option's header during option haggling; <see cref="Length"/> bytes of data follow.</summary>
internal readonly record struct NbdOptionHeader(NbdOption Option, uint Length);
