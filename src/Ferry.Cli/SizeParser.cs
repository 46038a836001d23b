using System.Globalization;

namespace Ferry.Cli;

/// <summary>Reads sizes as people write them: 512M, 2G, 1T (binary units; a trailing B or iB is allowed).</summary>
public static class SizeParser
{
    /// <summary>A byte count; a plain number is bytes, as qemu-img reads it.</summary>
    public static Result<long> ParseBytes(string text) => Parse(text, plainShift: 0);

    /// <summary>A MiB count; a plain number is MiB, as QEMU's -m reads it.</summary>
    public static Result<long> ParseMiB(string text) =>
        Parse(text, plainShift: 20).TryGetValue(out var bytes, out var error)
            ? bytes % (1 << 20) == 0 ? bytes >> 20 : Invalid(text)
            : error;

    private static Result<long> Parse(string text, int plainShift)
    {
        var number = text.Trim().ToUpperInvariant();
        number = number.EndsWith("IB", StringComparison.Ordinal) ? number[..^2] : number.EndsWith('B') ? number[..^1] : number;
        var shift = plainShift;
        if (number.Length > 0 && char.IsLetter(number[^1]))
        {
            shift = number[^1] switch { 'K' => 10, 'M' => 20, 'G' => 30, 'T' => 40, _ => -1 };
            number = number[..^1];
        }

        if (shift < 0 || !long.TryParse(number, NumberStyles.None, CultureInfo.InvariantCulture, out var value)
            || value <= 0 || value > long.MaxValue >> shift)
        {
            return Invalid(text);
        }

        return value << shift;
    }

    private static FerryError Invalid(string text) =>
        FerryError.InvalidArgument($"invalid size '{text}': give a positive whole number with a suffix K, M, G or T (e.g. 512M, 2G)");
}
