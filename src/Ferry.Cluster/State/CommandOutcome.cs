namespace Ferry.Cluster.State;

/// <summary>What applying a command did: an error (nothing changed) or a message, and the epoch a promotion was granted.</summary>
public sealed record CommandOutcome(FerryError? Error, string Message, ulong? Epoch = null)
{
    public bool IsOk => Error is null;

    public static CommandOutcome Failed(FerryError error) => new(error, error.Message);
}
