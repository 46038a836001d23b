namespace Ferry.Storage.Nbd;

/// <summary>Why bytes from a peer could not be parsed; the connection cannot continue after any of these.</summary>
internal enum NbdParseError
{
    None,
    BadMagic,
    BadLength,
    BadString,
}
