using Ferry.Agent.Vms;
using VmRecord = Ferry.Cluster.State.VmRecord;
using Ferry.Cluster.Reconcile;
using Ferry.Cluster.State;
using Ferry.Hypervisor;
using Ferry.Storage.Replication;
using Ferry.Storage.Replication.Wire;
using Ferry.Storage.Volumes;

namespace Ferry.Agent.Api;

/// <summary>Body of POST /api/v1/cluster/volumes: a volume with a copy on each host named (this host if none).</summary>
public sealed record ClusterVolumeRequest(string Name, long Size, IReadOnlyList<string>? Hosts = null, ReplicationProtocol Protocol = ReplicationProtocol.C);

/// <summary>Body of POST /api/v1/cluster/volumes/{name}/promote.</summary>
public sealed record ClusterPromoteRequest(string Host, bool Force = false);

/// <summary>A volume of the cluster: where its copies are, which is primary, and each copy as its host last reported it.</summary>
public sealed record ClusterVolumeView(
    string Name,
    Guid Id,
    long Size,
    ReplicationProtocol Protocol,
    string? Primary,
    ulong Epoch,
    IReadOnlyList<ClusterCopyView> Copies);

/// <summary>One copy: its host's last report (null before the first) and the cluster's Outdated mark, if any.</summary>
/// <param name="Epoch">The highest epoch the copy has seen, as its host reported it.</param>
/// <param name="HostFenced">The copy's host is fenced (failed and switched off): the report is from before, not how the copy is now.</param>
public sealed record ClusterCopyView(
    string Host, DiskState? Disk, CopyRole? Role, ConnectionState? Connection, OutdatedMark? Outdated, string? Problem, DateTimeOffset? ReportedAt, ulong? Epoch = null,
    HostFence? HostFenced = null);

internal static class WorkloadViews
{
    public static ClusterVolumeView Volume(ClusterState state, VolumeRecord volume) => new(
        volume.Name,
        volume.Id,
        volume.SizeBytes,
        volume.Protocol,
        volume.Primary,
        volume.Epoch,
        [
            .. volume.Hosts.Select(host =>
            {
                var report = state.Reports.GetValueOrDefault(host);
                var copy = report?.Copies.GetValueOrDefault(volume.Name);
                return new ClusterCopyView(
                    host, copy?.Disk, copy?.Role, copy?.Connection, volume.Outdated.GetValueOrDefault(host), copy?.Problem, copy is null ? null : report!.At, copy?.Epoch,
                    state.Host(host)?.Fenced);
            }),
        ]);

    /// <summary>A cluster VM as its host last reported it; <paramref name="local"/> adds what this host knows when it runs here.</summary>
    public static VmView Vm(ClusterState state, VmRecord vm, VmView? local)
    {
        var report = vm.Host is { } host ? state.Report(host).Vms.GetValueOrDefault(vm.Name) : null;
        var desired = vm.Desired == VmDesiredState.Running ? DesiredState.Running : DesiredState.Stopped;
        // Once the cluster gave up on a crashing VM, that says more than the host's account of the last exit.
        var waiting = vm.Recoveries.Error is null ? report?.Problem ?? ResourcePlan.Waiting(state, vm) : ResourcePlan.Waiting(state, vm);
        var view = local is not null
            ? local with { Desired = desired, Managed = true, Host = vm.Host, Waiting = waiting }
            : new VmView(vm.Name, report?.State ?? VmState.Stopped, desired, null, null, null, null, vm.Spec, true, vm.Host, waiting);
        return view with { Migration = vm.Migration, LastMigration = vm.LastMigration, Rules = vm.Rules, Home = vm.Home };
    }
}
