namespace Ferry.Cli;

/// <summary>
/// The exit codes scripts can rely on: 0 success, 1 unexpected failure, 2 bad usage or input,
/// then one code per kind of expected failure.
/// </summary>
public static class ExitCodes
{
    public const int Ok = 0;
    public const int Failure = 1;
    public const int InvalidArgument = 2;
    public const int NotFound = 3;
    public const int Conflict = 4;
    public const int WrongState = 5;
    public const int Unavailable = 6;
    public const int Environment = 7;

    public static int Of(ErrorCode code) => code switch
    {
        ErrorCode.InvalidArgument => InvalidArgument,
        ErrorCode.NotFound => NotFound,
        ErrorCode.Conflict => Conflict,
        ErrorCode.WrongState => WrongState,
        ErrorCode.Unavailable => Unavailable,
        ErrorCode.Environment => Environment,
        _ => Failure,
    };
}
