using Ferry.Cluster.Consensus;
using Ferry.Cluster.State;
using Microsoft.Extensions.Logging;

namespace Ferry.Agent.Cluster;

/// <summary>
/// The leader's fencing of failed hosts (DESIGN invariant 4). A host whose lease ran out with its margin
/// has fenced itself by now (invariant 5); when it has a fence agent, that agent switches it off first
/// (a hung host that wakes would otherwise run on until it notices its lease is gone). Then FenceHost
/// is committed, and the resource manager recovers the host's VMs. Each host is fenced by one task at
/// a time; a run of the agent that fails is tried again, and when every try failed the lease alone is
/// relied on, which that event says.
/// </summary>
internal sealed partial class Fencer(LeaseService leases, TimeProvider time, ILoggerFactory loggers) : IAsyncDisposable
{
    private const int Tries = 3;

    private readonly ILogger _log = loggers.CreateLogger("Ferry.Fencer");
    private readonly Dictionary<string, Task> _fencing = new(StringComparer.Ordinal);

    /// <summary>Starts fencing every failed host that is not being fenced already.</summary>
    public void Check(ConsensusNode node, CancellationToken ct)
    {
        foreach (var (host, silence) in leases.Failed())
        {
            if (!_fencing.TryGetValue(host, out var running) || running.IsCompleted)
            {
                _fencing[host] = FenceAsync(node, host, silence, ct);
            }
        }
    }

    private async Task FenceAsync(ConsensusNode node, string host, TimeSpan silence, CancellationToken ct)
    {
        try
        {
            var reason = $"lease expired: no renewal for {silence.TotalSeconds:0.0} s";
            await ProposeAsync(node, new RecordEvent("host-failed", $"host {host} failed: {reason}", host), ct).ConfigureAwait(false);
            if (node.State.Host(host)?.FenceAgent is { } agent)
            {
                reason += await SwitchOffAsync(node, host, agent, ct).ConfigureAwait(false);
            }

            await ProposeAsync(node, new FenceHost(host, reason), ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // The host stops.
        }
        catch (Exception e)
        {
            // Deposed mid-way, most likely: the next leader fences the host again from its own book.
            LogFailed(_log, host, e.Message);
        }
    }

    /// <summary>Runs the fence agent with action=off until it succeeds or runs out of tries; says how it went, for the fence's reason.</summary>
    private async Task<string> SwitchOffAsync(ConsensusNode node, string host, FenceAgent agent, CancellationToken ct)
    {
        FerryError? error = null;
        for (var attempt = 1; attempt <= Tries; attempt++)
        {
            error = await FenceAgentRunner.RunAsync(agent, "off", time, ct).ConfigureAwait(false);
            if (error is null)
            {
                return "; switched off by its fence agent";
            }

            await ProposeAsync(node, new RecordEvent("fence-agent-failed", $"fencing {host}, try {attempt} of {Tries}: {error.Message}", host), ct).ConfigureAwait(false);
            if (attempt < Tries)
            {
                await Task.Delay(TimeSpan.FromSeconds(1), time, ct).ConfigureAwait(false);
            }
        }

        return $"; its fence agent failed ({error!.Message}): its lease and self-fencing are relied on";
    }

    private async Task ProposeAsync(ConsensusNode node, ClusterCommand command, CancellationToken ct)
    {
        var outcome = await node.ProposeAsync(command with { At = time.GetUtcNow() }, ct).ConfigureAwait(false);
        LogProposed(_log, command.Kind, outcome.Message);
    }

    public async ValueTask DisposeAsync() => await Task.WhenAll(_fencing.Values).ConfigureAwait(false);

    [LoggerMessage(1240, LogLevel.Warning, "fencer: {Kind}: {Outcome}")]
    private static partial void LogProposed(ILogger logger, string kind, string outcome);

    [LoggerMessage(1241, LogLevel.Warning, "fencer: fencing host {HostId} stopped: {Reason}")]
    private static partial void LogFailed(ILogger logger, string hostId, string reason);
}
