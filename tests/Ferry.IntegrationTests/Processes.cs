using System.Diagnostics;

namespace Ferry.IntegrationTests;

public sealed record ProcessOutput(int ExitCode, string StandardOutput, string StandardError);

public static class Processes
{
    public static async Task<ProcessOutput> RunAsync(string fileName, IEnumerable<string> args, TimeSpan timeout, IDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo(fileName) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[key] = value;
        }

        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{fileName} {string.Join(' ', info.ArgumentList)} did not finish in {timeout.TotalSeconds:0} s");
        }

        return new ProcessOutput(process.ExitCode, await stdout, await stderr);
    }

    /// <summary>Runs a command that must succeed (mount, cp, ...) within 30 s.</summary>
    public static async Task RunOkAsync(string fileName, params string[] args)
    {
        var run = await RunAsync(fileName, args, TimeSpan.FromSeconds(30));
        Assert.True(run.ExitCode == 0, $"{fileName} {string.Join(' ', args)} exited {run.ExitCode}: {run.StandardError}");
    }

    public static int FreeTcpPort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }
}
