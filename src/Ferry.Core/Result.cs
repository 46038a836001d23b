using System.Diagnostics.CodeAnalysis;

namespace Ferry;

/// <summary>The value of an operation that can fail in an expected way.</summary>
public readonly struct Result<T>
{
    private readonly T? _value;

    private Result(T? value, FerryError? error)
    {
        _value = value;
        Error = error;
    }

    public FerryError? Error { get; }

    [MemberNotNullWhen(false, nameof(Error))]
    public bool IsOk => Error is null;

    public T Value => Error is null ? _value! : throw new InvalidOperationException($"result holds an error: {Error.Message}");

    public static Result<T> Ok(T value) => new(value, null);

    public static Result<T> Fail(FerryError error) => new(default, error);

    public static implicit operator Result<T>(T value) => Ok(value);

    public static implicit operator Result<T>(FerryError error) => Fail(error);

    public Result<TOut> Map<TOut>(Func<T, TOut> map) => Error is null ? map(_value!) : Result<TOut>.Fail(Error);

    /// <summary>The next step, which can fail too, when this one succeeded.</summary>
    public Result<TOut> Then<TOut>(Func<T, Result<TOut>> next) => Error is null ? next(_value!) : Result<TOut>.Fail(Error);

    public bool TryGetValue([MaybeNullWhen(false)] out T value, [MaybeNullWhen(true)] out FerryError error)
    {
        value = _value;
        error = Error;
        return Error is null;
    }
}
