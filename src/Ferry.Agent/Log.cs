using Ferry.Hypervisor;
using Microsoft.Extensions.Logging;

using Ferry.Agent.Vms;

namespace Ferry.Agent;

/// <summary>The agent's log messages; event ids 1000-1999.</summary>
internal static partial class Log
{
    [LoggerMessage(1000, LogLevel.Information, "VM {VmId}: {From} -> {To} ({Reason})")]
    public static partial void VmStateChanged(ILogger logger, string vmId, VmState from, VmState to, string reason);

    [LoggerMessage(1001, LogLevel.Information, "VM {VmId}: reattached to running QEMU pid {Pid}")]
    public static partial void VmReattached(ILogger logger, string vmId, int pid);

    [LoggerMessage(1002, LogLevel.Warning, "VM {VmId}: start failed: {Reason}")]
    public static partial void VmStartFailed(ILogger logger, string vmId, string reason);

    [LoggerMessage(1006, LogLevel.Warning, "VM {VmId}: {Error}")]
    public static partial void VmIoError(ILogger logger, string vmId, string error);

    [LoggerMessage(1003, LogLevel.Warning, "VM {VmId}: QMP command failed during {Operation}: {Reason}")]
    public static partial void QmpFailed(ILogger logger, string vmId, string operation, string reason);

    [LoggerMessage(1004, LogLevel.Information, "accelerator chosen: {Accelerator} (asked for {Choice})")]
    public static partial void AcceleratorChosen(ILogger logger, Hypervisor.Accelerator accelerator, Hypervisor.AcceleratorChoice choice);

    [LoggerMessage(1005, LogLevel.Information, "agent listening on {Address}, data in {DataDirectory}")]
    public static partial void Listening(ILogger logger, string address, string dataDirectory);

    [LoggerMessage(1100, LogLevel.Information, "cluster {ClusterName} ({ClusterId}) created with host {HostId}")]
    public static partial void ClusterCreated(ILogger logger, string clusterName, Guid clusterId, string hostId);

    [LoggerMessage(1101, LogLevel.Information, "host {HostId} joined cluster {ClusterName}")]
    public static partial void HostJoined(ILogger logger, string hostId, string clusterName);

    [LoggerMessage(1102, LogLevel.Warning, "join of host {HostId} refused: {Reason}")]
    public static partial void JoinRefused(ILogger logger, string hostId, string reason);

    [LoggerMessage(1103, LogLevel.Information, "host {HostId}: leader -> {Leader}")]
    public static partial void LeaderChanged(ILogger logger, string leader, string hostId);

    [LoggerMessage(1104, LogLevel.Information, "host {HostId}: consensus of cluster {ClusterName} on {Address}")]
    public static partial void ConsensusStarted(ILogger logger, string clusterName, string hostId, string address);

    [LoggerMessage(1105, LogLevel.Warning, "host {HostId} was removed from the cluster: consensus stopped, membership set aside")]
    public static partial void HostRemoved(ILogger logger, string hostId);
}
