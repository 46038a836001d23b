namespace Ferry.Lab;

/// <summary>One direction of a cut link: packets from <see cref="From"/>'s namespace to <see cref="To"/> are dropped.</summary>
public sealed record LinkCut(LabHost From, LabHost To);

/// <summary>
/// Which links a partition cuts. A partition separates a group of hosts from others (by default
/// from every other host); traffic is dropped both ways, the way a failed switch port or a pulled
/// cable drops it, while this machine still reaches every host (the lab's management path).
/// </summary>
public static class LabPartition
{
    public static Result<IReadOnlyList<LinkCut>> Cuts(LabLayout lab, IReadOnlyCollection<string> group, IReadOnlyCollection<string> from)
    {
        if (group.Count == 0)
        {
            return FerryError.InvalidArgument("name the hosts to partition");
        }

        if (group.Concat(from).Select(lab.Host).Select(found => found.Error).FirstOrDefault(e => e is not null) is { } unknown)
        {
            return unknown;
        }

        if (group.Intersect(from).FirstOrDefault() is { } both)
        {
            return FerryError.InvalidArgument($"host '{both}' cannot be on both sides of a partition");
        }

        var inside = group.Select(lab.Find).OfType<LabHost>().ToArray();
        var outside = from.Count > 0
            ? from.Select(lab.Find).OfType<LabHost>().ToArray()
            : lab.Hosts.Where(h => !group.Contains(h.Name)).ToArray();
        if (outside.Length == 0)
        {
            return FerryError.InvalidArgument("a partition needs hosts on both sides: that group is the whole lab");
        }

        return inside.SelectMany(a => outside.SelectMany(b => new[] { new LinkCut(a, b), new LinkCut(b, a) })).ToArray();
    }
}
