using System.Security.Cryptography;
using System.Text;

namespace Ferry.Cluster.Security;

/// <summary>
/// A join token as the user copies it: <c>ferry1.ID.SECRET.FINGERPRINT</c>. The id names the token in the
/// cluster state, the secret proves the holder got it from an administrator (the state keeps only its
/// hash), and the CA fingerprint lets the joining host check it talks to the right cluster before it
/// sends anything.
/// </summary>
public sealed record JoinTokenText(string Id, string Secret, string AuthorityFingerprint)
{
    private const string Prefix = "ferry1";

    public static JoinTokenText New(string authorityFingerprint) =>
        new(Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6)), Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(24)), authorityFingerprint);

    public static Result<JoinTokenText> Parse(string text)
    {
        var parts = text.Trim().Split('.');
        if (parts.Length != 4 || parts[0] != Prefix || parts.Skip(1).Any(p => p.Length == 0 || !p.All(char.IsAsciiHexDigitLower)))
        {
            return FerryError.InvalidArgument("malformed join token: it looks like ferry1.ID.SECRET.FINGERPRINT; copy it whole from 'ferry cluster join-token'");
        }

        return new JoinTokenText(parts[1], parts[2], parts[3]);
    }

    public static string Hash(string secret) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(secret)));

    public string SecretHash => Hash(Secret);

    public override string ToString() => $"{Prefix}.{Id}.{Secret}.{AuthorityFingerprint}";
}
