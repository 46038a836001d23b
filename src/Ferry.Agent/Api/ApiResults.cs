using Microsoft.AspNetCore.Http;

namespace Ferry.Agent.Api;

/// <summary>Turns results into HTTP answers; every error is a problem document whose detail is the one-line reason.</summary>
internal static class ApiResults
{
    public static IResult From<T>(Result<T> result, int successStatus = StatusCodes.Status200OK) =>
        result.TryGetValue(out var value, out var error)
            ? Results.Json(value, FerryJson.Options, statusCode: successStatus)
            : Problem(error);

    public static IResult Problem(FerryError error) =>
        Results.Problem(
            detail: error.Message,
            statusCode: StatusOf(error.Code),
            title: error.Code.ToString(),
            extensions: new Dictionary<string, object?> { ["code"] = error.Code.ToString() });

    public static int StatusOf(ErrorCode code) => code switch
    {
        ErrorCode.InvalidArgument => StatusCodes.Status400BadRequest,
        ErrorCode.NotFound => StatusCodes.Status404NotFound,
        ErrorCode.Conflict => StatusCodes.Status409Conflict,
        ErrorCode.WrongState => StatusCodes.Status409Conflict,
        ErrorCode.Unavailable => StatusCodes.Status503ServiceUnavailable,

        // The host lacks something the request needs (a program, a device): 424 Failed Dependency.
        ErrorCode.Environment => StatusCodes.Status424FailedDependency,
        _ => StatusCodes.Status500InternalServerError,
    };
}
