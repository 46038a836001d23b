using System.Text.RegularExpressions;

namespace Ferry;

/// <summary>The one naming rule for VMs, volumes and hosts: safe in paths, URLs, NBD export names and QEMU options.</summary>
public static partial class ResourceName
{
    public const string Rule = "use 1-63 lower-case letters, digits and '-', starting with a letter or digit";

    [GeneratedRegex("^[a-z0-9][a-z0-9-]{0,62}$")]
    private static partial Regex Pattern();

    public static bool IsValid(string name) => Pattern().IsMatch(name);
}
