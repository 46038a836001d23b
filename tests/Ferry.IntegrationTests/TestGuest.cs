namespace Ferry.IntegrationTests;

/// <summary>The test guest (guest/build.sh), built once per test run and cached by content hash.</summary>
public static class TestGuest
{
    private static readonly Lazy<Task<string>> Built = new(BuildAsync);

    public static Task<string> DirectoryAsync() => Built.Value;

    private static async Task<string> BuildAsync()
    {
        var result = await Processes.RunAsync("bash", [Path.Combine(Repo.Root, "guest", "build.sh")], TimeSpan.FromMinutes(10));
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException($"guest/build.sh failed ({result.ExitCode}): {result.StandardError}");
        }

        return result.StandardOutput.Trim().Split('\n')[^1].Trim();
    }
}
