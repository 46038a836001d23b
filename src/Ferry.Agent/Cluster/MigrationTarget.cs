using Ferry.Agent.Vms;
using Ferry.Agent.Volumes;
using Ferry.Cluster.Reconcile;
using Ferry.Cluster.State;
using VmRecord = Ferry.Cluster.State.VmRecord;
using Ferry.Storage.Replication;
using Microsoft.Extensions.Logging;

namespace Ferry.Agent.Cluster;

/// <summary>A migration's source asks its target to get ready, or to let the VM run.</summary>
public sealed record MigrationRequest(string Vm, Guid MigrationId);

/// <summary>Where the target's QEMU takes the VM's state (tcp:ADDRESS:PORT).</summary>
public sealed record MigrationReady(string Uri);

/// <summary>
/// The target's side of a live migration, asked by the source over the peer API: each disk's copy
/// becomes a second primary beside the source's (protocol C both ways, so that a write on either is on
/// both before it completes), then QEMU starts paused, listening for the VM's state; on the source's
/// word, after the switch-over, it runs.
/// </summary>
internal sealed partial class MigrationTarget(ClusterService cluster, VmManager vms, VolumeReplication replication, AgentOptions options, TimeProvider time, ILoggerFactory loggers)
{
    /// <summary>How long a copy may take to be connected and in step with the source's once both allow two primaries.</summary>
    private static readonly TimeSpan SecondPrimaryWait = TimeSpan.FromSeconds(20);

    private readonly ILogger _log = loggers.CreateLogger("Ferry.Migration");

    public async Task<Result<MigrationReady>> PrepareAsync(MigrationRequest request, CancellationToken ct)
    {
        // The source acts on the migration as soon as it has applied it; this host may not have yet.
        if (Ours(request) is null)
        {
            await cluster.CatchUpAsync(ct).ConfigureAwait(false);
        }

        if (Ours(request) is not { } vm)
        {
            return FerryError.Conflict($"no migration {request.MigrationId} of VM '{request.Vm}' to {options.HostName} is under way");
        }

        foreach (var volume in Ferry.Cluster.Reconcile.Placement.VolumesOf(vm))
        {
            if (await SecondPrimaryAsync(volume, ct).ConfigureAwait(false) is { } error)
            {
                return error;
            }
        }

        if (vms.Get(vm.Name).TryGetValue(out var stale, out _))
        {
            // Left from an earlier run here: it must not run beside the one that takes the state.
            if (stale.State is not (Hypervisor.VmState.Stopped or Hypervisor.VmState.Crashed))
            {
                await vms.StopAsync(vm.Name, force: true, ct).ConfigureAwait(false);
            }
        }
        else if ((await vms.CreateAsync(vm.Spec, ct, managed: true).ConfigureAwait(false)).Error is { } notDefined)
        {
            return notDefined;
        }

        var address = ListenAddress();
        if (!(await vms.StartIncomingAsync(vm.Name, address, ct).ConfigureAwait(false)).TryGetValue(out var port, out var notStarted))
        {
            return notStarted;
        }

        LogReady(_log, options.HostName, vm.Name, address, port);
        return new MigrationReady($"tcp:{address}:{port}");
    }

    public async Task<Result<MigrationReady>> ResumeAsync(MigrationRequest request, CancellationToken ct)
    {
        if (Ours(request) is not { } vm)
        {
            return FerryError.Conflict($"no migration {request.MigrationId} of VM '{request.Vm}' to {options.HostName} is under way");
        }

        return (await vms.ResumeAsync(vm.Name, ct).ConfigureAwait(false)).Map(_ => new MigrationReady(""));
    }

    private VmRecord? Ours(MigrationRequest request) =>
        cluster.State?.Vm(request.Vm) is { Migration: { } m } vm && m.Id == request.MigrationId && m.Target == options.HostName ? vm : null;

    /// <summary>Opens the copy to a second primary and makes it one, once the source's link to it is up and in step.</summary>
    private async Task<FerryError?> SecondPrimaryAsync(string volume, CancellationToken ct)
    {
        if (!replication.TryGet(volume, out var copy))
        {
            return FerryError.NotFound($"no copy of '{volume}' is open on {options.HostName}");
        }

        if (copy.Settings.Role == Storage.Replication.Wire.CopyRole.Primary)
        {
            return null; // an earlier try got this far
        }

        if (!copy.Settings.AllowTwoPrimaries)
        {
            await copy.ApplySettingsAsync(copy.Settings with { AllowTwoPrimaries = true }, ct).ConfigureAwait(false);
            await VolumeReplication.SaveAsync(copy, ct).ConfigureAwait(false);
        }

        // The source's copy reopens its link to take a second primary; until then this one is not in step.
        var started = time.GetTimestamp();
        while (true)
        {
            var promoted = await copy.PromoteSecondAsync(ct).ConfigureAwait(false);
            if (promoted.IsOk || time.GetElapsedTime(started) > SecondPrimaryWait)
            {
                return promoted.Error;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(100), time, ct).ConfigureAwait(false);
        }
    }

    /// <summary>The address the source reaches this host on: that of its replication endpoint.</summary>
    private string ListenAddress()
    {
        var replicationAddress = cluster.State?.Host(options.HostName)?.ReplicationAddress ?? options.ReplicationListen ?? "127.0.0.1:0";
        return replicationAddress[..replicationAddress.LastIndexOf(':')];
    }

    [LoggerMessage(1230, LogLevel.Information, "host {HostId}: VM {VmId} waits for its migrated state on {Address}:{Port}")]
    private static partial void LogReady(ILogger logger, string hostId, string vmId, string address, int port);
}
