using System.Globalization;
using System.Text.RegularExpressions;

namespace Ferry.Lab;

/// <summary>How a slowed host's link behaves: added delay, lost packets, a rate limit (each optional).</summary>
public sealed partial record LinkShape(TimeSpan? Delay, double? LossPercent, string? Rate)
{
    public bool NeedsNetem => Delay is not null || LossPercent is not null;

    public static Result<LinkShape> Create(TimeSpan? delay, double? lossPercent, string? rate)
    {
        if (delay is null && lossPercent is null && rate is null)
        {
            return FerryError.InvalidArgument("say how to slow the link: --delay, --loss and/or --rate");
        }

        if (delay is { } d && (d < TimeSpan.Zero || d > TimeSpan.FromSeconds(10)))
        {
            return FerryError.InvalidArgument($"--delay {d.TotalMilliseconds} ms is outside 0..10000 ms");
        }

        if (lossPercent is { } loss && (loss is < 0 or > 100 || double.IsNaN(loss)))
        {
            return FerryError.InvalidArgument($"--loss {loss} is outside 0..100 (percent)");
        }

        if (rate is not null && !RatePattern().IsMatch(rate))
        {
            return FerryError.InvalidArgument($"invalid --rate '{rate}': a number and a unit, such as 500kbit, 10mbit or 1gbit");
        }

        return new LinkShape(delay, lossPercent, rate);
    }

    /// <summary>The tc qdisc that gives this shape: netem for delay and loss (with its own rate), else a token bucket.</summary>
    public IReadOnlyList<string> Qdisc()
    {
        if (!NeedsNetem)
        {
            return ["tbf", "rate", Rate!, "burst", "64kb", "latency", "200ms"];
        }

        var args = new List<string> { "netem" };
        if (Delay is { } delay)
        {
            args.AddRange(["delay", $"{((long)delay.TotalMilliseconds).ToString(CultureInfo.InvariantCulture)}ms"]);
        }

        if (LossPercent is { } loss)
        {
            args.AddRange(["loss", $"{loss.ToString(CultureInfo.InvariantCulture)}%"]);
        }

        if (Rate is { } rate)
        {
            args.AddRange(["rate", rate]);
        }

        return args;
    }

    [GeneratedRegex("^[0-9]+(bit|kbit|mbit|gbit|bps|kbps|mbps|gbps)$")]
    private static partial Regex RatePattern();
}
