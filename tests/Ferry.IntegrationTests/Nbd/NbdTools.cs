namespace Ferry.IntegrationTests.Nbd;

/// <summary>Runs the NBD client tools; a missing tool fails the test loudly.</summary>
internal static class NbdTools
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    public static async Task<string> RunAsync(string tool, params string[] args)
    {
        ProcessOutput result;
        try
        {
            result = await Processes.RunAsync(tool, args, Timeout);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"{tool} is not installed (scripts install the NBD client tools): {e.Message}", e);
        }

        Assert.True(result.ExitCode == 0, $"{tool} {string.Join(' ', args)} exited {result.ExitCode}:\n{result.StandardOutput}\n{result.StandardError}");
        return result.StandardOutput;
    }

    /// <summary>qemu-io exits 0 even when a pattern check fails, so its output is checked too.</summary>
    public static async Task<string> QemuIoAsync(string uri, params string[] commands)
    {
        var args = new List<string> { "-f", "raw" };
        foreach (var command in commands)
        {
            args.Add("-c");
            args.Add(command);
        }

        args.Add(uri);
        var output = await RunAsync("qemu-io", [.. args]);
        Assert.DoesNotContain("failed", output, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("error", output, StringComparison.OrdinalIgnoreCase);
        return output;
    }
}
