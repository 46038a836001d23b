using Ferry.Storage.Volumes;

namespace Ferry.Storage.Replication;

/// <summary>Fresh generation ids: random, non-zero, and unused by the copy (what <see cref="GenerationRules"/> requires).</summary>
internal static class GenerationIdSource
{
    public static ulong Next(GenerationIds ids)
    {
        while (true)
        {
            var id = (ulong)Random.Shared.NextInt64(1, long.MaxValue);
            if (id != ids.Current && id != ids.Bitmap && id != ids.History1 && id != ids.History2)
            {
                return id;
            }
        }
    }
}
