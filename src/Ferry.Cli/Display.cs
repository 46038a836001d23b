namespace Ferry.Cli;

/// <summary>How tables spell values, matching the JSON output.</summary>
internal static class Display
{
    /// <summary>Enum values as JSON spells them (running, up-to-date, stand-alone).</summary>
    public static string Name<T>(T value)
        where T : struct, Enum => FerryJson.Name(value);
}
