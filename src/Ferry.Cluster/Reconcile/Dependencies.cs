using Ferry.Cluster.State;
using Ferry.Hypervisor;

namespace Ferry.Cluster.Reconcile;

/// <summary>
/// Start order: a VM starts (first, again after a crash, or on another host after a failure) only once
/// every VM it depends on is healthy: running where it is placed, and, if it has a health check, having
/// answered it since it last started.
/// </summary>
public static class Dependencies
{
    public static bool IsHealthy(ClusterState state, VmRecord vm) =>
        vm.Desired == VmDesiredState.Running
        && vm.Host is { } host
        && state.Report(host).Vms.GetValueOrDefault(vm.Name)?.State == VmState.Running
        && (vm.Spec.HealthCheck is null || vm.HealthyAt is not null);

    /// <summary>How deep the VM sits in the order: 0 when it depends on nothing, else one more than the deepest it depends on.</summary>
    public static int Depth(ClusterState state, VmRecord vm) =>
        vm.PlacementRules.Dependencies.Select(state.Vm).OfType<VmRecord>().Select(d => Depth(state, d) + 1).DefaultIfEmpty(0).Max();

    /// <summary>What the VM waits for before it may start, or null when all it depends on is healthy.</summary>
    public static string? Waiting(ClusterState state, VmRecord vm)
    {
        foreach (var name in vm.PlacementRules.Dependencies)
        {
            if (state.Vm(name) is not { } dependency)
            {
                return $"it depends on VM '{name}', which no longer exists";
            }

            if (!IsHealthy(state, dependency))
            {
                return $"waiting for VM '{name}' to be healthy ({Why(state, dependency)})";
            }
        }

        return null;
    }

    /// <summary>The VM has waited for its dependencies longer than it may: the reason the cluster gives up on it, or null.</summary>
    public static string? TimedOut(ClusterState state, VmRecord vm, DateTimeOffset now) =>
        vm.StartAskedAt is { } since && now - since > vm.PlacementRules.WaitForDependencies && Waiting(state, vm) is { } waiting
            ? $"its dependencies were not healthy within {vm.PlacementRules.WaitForDependencies.TotalSeconds:0} s: {waiting}"
            : null;

    private static string Why(ClusterState state, VmRecord vm) =>
        vm.Desired != VmDesiredState.Running ? "it is stopped"
        : vm.Recoveries.Error is { } error ? $"the cluster gave up on it: {error}"
        : vm.Host is not { } host ? "it is not placed yet"
        : state.Report(host).Vms.GetValueOrDefault(vm.Name)?.State is not VmState.Running and var seen ? $"it is {FerryJson.Name(seen ?? VmState.Stopped)} on {host}"
        : "it has not answered its health check yet";
}
