using CsCheck;
using Ferry.Storage.Nbd;

namespace Ferry.Tests.Nbd;

/// <summary>Generators for NBD frames.</summary>
internal static class NbdGen
{
    public static readonly Gen<NbdRequest> Request =
        Gen.Select(Gen.UShort, Gen.UShort, Gen.ULong, Gen.ULong, Gen.UInt,
            (type, flags, cookie, offset, length) => new NbdRequest((NbdCommand)type, (NbdCommandFlags)flags, cookie, offset, length));

    /// <summary>Export names and queries: empty, ASCII, and multi-byte UTF-8.</summary>
    public static readonly Gen<string> Name = Gen.OneOf(Gen.Const(string.Empty), Gen.String[Gen.Char.AlphaNumeric, 0, 40], Gen.String[Gen.Char['α', 'ω'], 1, 20]);

    public static readonly Gen<NbdExportQuery> ExportQuery =
        Gen.Select(Name, Gen.Bool, Gen.Bool, Gen.Bool, (name, wantsName, wantsDescription, wantsBlockSize) => new NbdExportQuery(name, wantsName, wantsDescription, wantsBlockSize));

    public static readonly Gen<(string Name, string[] Queries)> MetaContextQuery = Gen.Select(Name, Name.Array[0, 5]);
}
