namespace Ferry.IntegrationTests;

/// <summary>Waits on conditions with a deadline, never on a fixed sleep.</summary>
public static class Wait
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(100);

    public static async Task<T> UntilAsync<T>(Func<Task<T?>> probe, TimeSpan timeout, string what)
    {
        using var deadline = new CancellationTokenSource(timeout);
        Exception? last = null;
        while (!deadline.IsCancellationRequested)
        {
            try
            {
                if (await probe() is { } value)
                {
                    return value;
                }
            }
            catch (Exception e) when (e is HttpRequestException or IOException or TaskCanceledException or FormatException)
            {
                last = e;
            }

            await Task.Delay(Poll, CancellationToken.None);
        }

        throw new TimeoutException($"timed out after {timeout.TotalSeconds:0} s waiting for {what}" + (last is null ? string.Empty : $" (last error: {last.Message})"));
    }

    public static Task UntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what) =>
        UntilAsync<object>(async () => await condition() ? new object() : null, timeout, what);
}
