namespace Ferry;

/// <summary>An expected failure: what failed, why, and what to do, in one line.</summary>
public sealed record FerryError(ErrorCode Code, string Message)
{
    public static FerryError InvalidArgument(string message) => new(ErrorCode.InvalidArgument, message);
    public static FerryError NotFound(string message) => new(ErrorCode.NotFound, message);
    public static FerryError Conflict(string message) => new(ErrorCode.Conflict, message);
    public static FerryError WrongState(string message) => new(ErrorCode.WrongState, message);
    public static FerryError Unavailable(string message) => new(ErrorCode.Unavailable, message);
    public static FerryError Environment(string message) => new(ErrorCode.Environment, message);

    public override string ToString() => Message;
}
