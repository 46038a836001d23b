using System.Globalization;

namespace Ferry.Cli;

/// <summary>Reads durations as people write them: 50ms, 90s, 10m, 2h, 7d (a plain number is minutes).</summary>
public static class DurationParser
{
    private const long MaxSeconds = 366L * 86400;

    public static Result<TimeSpan> Parse(string text)
    {
        var trimmed = text.Trim();
        if (trimmed.EndsWith("ms", StringComparison.OrdinalIgnoreCase))
        {
            return int.TryParse(trimmed[..^2], NumberStyles.None, CultureInfo.InvariantCulture, out var ms) && ms > 0
                ? TimeSpan.FromMilliseconds(ms)
                : Invalid(text);
        }

        var hasUnit = trimmed.Length > 0 && char.IsLetter(trimmed[^1]);
        var seconds = (hasUnit ? char.ToLowerInvariant(trimmed[^1]) : 'm') switch
        {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => 0,
        };
        if (seconds == 0 || !int.TryParse(hasUnit ? trimmed[..^1] : trimmed, NumberStyles.None, CultureInfo.InvariantCulture, out var value)
            || value <= 0 || (long)value * seconds > MaxSeconds)
        {
            return Invalid(text);
        }

        return TimeSpan.FromSeconds((long)value * seconds);
    }

    private static FerryError Invalid(string text) =>
        FerryError.InvalidArgument($"invalid duration '{text}': give a positive whole number with ms, s, m, h or d, up to a year (e.g. 50ms, 90s, 10m, 2h)");
}
