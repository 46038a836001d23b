using System.Globalization;

namespace Ferry.Cli;

/// <summary>Reads sizes as people write them: 512 (MiB), 512M, 2G, 1T.</summary>
public static class SizeParser
{
    public static Result<long> ParseMiB(string text)
    {
        var trimmed = text.Trim().ToUpperInvariant();
        trimmed = trimmed.EndsWith("IB", StringComparison.Ordinal) ? trimmed[..^2] : trimmed.EndsWith('B') ? trimmed[..^1] : trimmed;
        long factor = 1;
        if (trimmed.Length > 0 && char.IsLetter(trimmed[^1]))
        {
            factor = trimmed[^1] switch
            {
                'M' => 1,
                'G' => 1024,
                'T' => 1024 * 1024,
                _ => 0,
            };
            trimmed = trimmed[..^1];
        }

        if (factor == 0 || !long.TryParse(trimmed, NumberStyles.None, CultureInfo.InvariantCulture, out var value)
            || value <= 0 || value > long.MaxValue / factor)
        {
            return FerryError.InvalidArgument($"invalid size '{text}': give a positive number of MiB, or use a suffix M, G or T (e.g. 512M, 2G)");
        }

        return value * factor;
    }
}
