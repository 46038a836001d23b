namespace Ferry.Hypervisor;

/// <summary>QEMU answered a command with an error, or the QMP connection failed.</summary>
public sealed class QmpException : Exception
{
    public QmpException(string message, string? errorClass = null)
        : base(message) => ErrorClass = errorClass;

    public QmpException(string message, Exception inner)
        : base(message, inner)
    {
    }

    public QmpException()
    {
    }

    /// <summary>QMP's error class, e.g. GenericError or CommandNotFound; null for connection failures.</summary>
    public string? ErrorClass { get; }
}
