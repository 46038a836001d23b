using System.Globalization;
using System.Net;
using Ferry.Hypervisor;

namespace Ferry.Cli;

/// <summary>Parses the compact forms of disks and port forwards given on the command line.</summary>
public static class SpecParser
{
    public const string VolumePrefix = "volume:";

    /// <summary>PATH[,format=raw|qcow2][,readonly] or volume:NAME[,readonly]</summary>
    public static Result<DiskSpec> ParseDisk(string text)
    {
        var parts = text.Split(',');
        if (parts[0].Length == 0)
        {
            return FerryError.InvalidArgument($"invalid --disk '{text}': give a file path, e.g. --disk /srv/vm1.raw");
        }

        var disk = parts[0].StartsWith(VolumePrefix, StringComparison.Ordinal)
            ? DiskSpec.ForVolume(parts[0][VolumePrefix.Length..])
            : new DiskSpec(parts[0]);
        foreach (var part in parts.AsSpan(1))
        {
            if (part == "readonly")
            {
                disk = disk with { ReadOnly = true };
            }
            else if (part.StartsWith("format=", StringComparison.Ordinal))
            {
                disk = disk with { Format = part["format=".Length..] };
            }
            else
            {
                return FerryError.InvalidArgument($"invalid --disk '{text}': unknown setting '{part}' (use format=raw|qcow2 or readonly)");
            }
        }

        return disk;
    }

    /// <summary>[ADDR:]HOSTPORT:GUESTPORT</summary>
    public static Result<PortForward> ParseForward(string text)
    {
        var parts = text.Split(':');
        var (address, host, guest) = parts.Length switch
        {
            2 => ("127.0.0.1", parts[0], parts[1]),
            3 => (parts[0], parts[1], parts[2]),
            _ => (string.Empty, string.Empty, string.Empty),
        };
        if (!int.TryParse(host, NumberStyles.None, CultureInfo.InvariantCulture, out var hostPort)
            || !int.TryParse(guest, NumberStyles.None, CultureInfo.InvariantCulture, out var guestPort)
            || !IPAddress.TryParse(address, out _))
        {
            return FerryError.InvalidArgument($"invalid --forward '{text}': use [ADDRESS:]HOSTPORT:GUESTPORT, e.g. 8080:80");
        }

        return new PortForward(hostPort, guestPort, address);
    }
}
