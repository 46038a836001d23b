namespace Ferry;

/// <summary>Classifies an expected failure; each code maps to one HTTP status and one CLI exit code.</summary>
public enum ErrorCode
{
    InvalidArgument,
    NotFound,
    Conflict,
    WrongState,
    Unavailable,
    Environment,

    /// <summary>A bug or an unexpected failure on the other side; details are in its log.</summary>
    Internal,
}
