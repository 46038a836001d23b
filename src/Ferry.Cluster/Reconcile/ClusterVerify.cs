using Ferry.Cluster.State;
using Ferry.Placement;
using Ferry.Storage.Replication.Wire;

namespace Ferry.Cluster.Reconcile;

public enum RiskSeverity
{
    /// <summary>The cluster cannot keep a promise now (absorb a host's loss, keep twins apart, run a VM).</summary>
    Error,

    /// <summary>Worth an operator's look: less redundancy or knowledge than the cluster would like.</summary>
    Warning,
}

/// <summary>One thing that puts the cluster's promises at risk, with the hosts and VMs concerned.</summary>
public sealed record Risk(RiskSeverity Severity, string Kind, string Message, IReadOnlyList<string> Hosts, IReadOnlyList<string> Vms);

/// <summary>
/// `ferry cluster verify`: what puts the cluster at risk, from the state alone: N+1 (the loss of which
/// host would strand which VMs), twins on one host, hosts over capacity, VMs the cluster gave up on,
/// volumes with a single or out-of-date copy, and hosts fenced, in maintenance or not reporting.
/// </summary>
public static class ClusterVerify
{
    public static IReadOnlyList<Risk> Risks(ClusterState state)
    {
        var risks = new List<Risk>();
        var hosts = Placement.Hosts(state);
        var placed = Placement.Placed(state);

        foreach (var failure in NPlusOne.Check(hosts, placed))
        {
            // With admission off the operator chose to run without the spare room: a warning, still named.
            var severity = state.Cluster?.NPlusOne ?? true ? RiskSeverity.Error : RiskSeverity.Warning;
            risks.Add(new Risk(severity, "n-plus-one", $"N+1: {failure}", [failure.FailedHost], failure.Stranded));
        }

        foreach (var host in hosts)
        {
            var here = placed.Where(v => v.Host == host.Name).ToList();
            if (here.Sum(v => v.MemoryMiB) > host.UsableMiB || here.Sum(v => v.VCpus) > host.UsableVCpus)
            {
                risks.Add(new Risk(RiskSeverity.Error, "over-capacity",
                    $"{host.Name} runs more than it has: {here.Sum(v => v.MemoryMiB)} of {host.UsableMiB} MiB, {here.Sum(v => v.VCpus)} of {host.UsableVCpus} vCPUs",
                    [host.Name], [.. here.Select(v => v.Name)]));
            }

            foreach (var twins in here.Where(v => v.AntiAffinity is not null).GroupBy(v => v.AntiAffinity).Where(g => g.Count() > 1))
            {
                risks.Add(new Risk(RiskSeverity.Error, "anti-affinity",
                    $"twins of group '{twins.Key}' share {host.Name}: one host's loss takes them all", [host.Name], [.. twins.Select(v => v.Name)]));
            }
        }

        foreach (var vm in state.Vms.Values.OrderBy(v => v.Name, StringComparer.Ordinal))
        {
            if (vm.Recoveries.Error is { } gaveUp)
            {
                risks.Add(new Risk(RiskSeverity.Error, "given-up", $"VM {vm.Name} is not restarted any more: {gaveUp}", [], [vm.Name]));
            }
            else if (vm.Desired == VmDesiredState.Running && ResourcePlan.Waiting(state, vm) is { } waiting)
            {
                risks.Add(new Risk(RiskSeverity.Warning, "not-running", $"VM {vm.Name} should run but does not yet: {waiting}", vm.Host is { } h ? [h] : [], [vm.Name]));
            }
        }

        foreach (var volume in state.Volumes.Values.OrderBy(v => v.Name, StringComparer.Ordinal))
        {
            var users = state.Vms.Values.Where(vm => Placement.VolumesOf(vm).Contains(volume.Name)).Select(vm => vm.Name).ToList();
            if (volume.Hosts.Count < 2)
            {
                risks.Add(new Risk(RiskSeverity.Warning, "single-copy", $"volume {volume.Name} has one copy: losing {volume.Hosts.FirstOrDefault()} loses it", [.. volume.Hosts], users));
            }

            var behind = volume.Hosts.Where(h => volume.Outdated.ContainsKey(h) || state.Report(h).Copies.GetValueOrDefault(volume.Name)?.Disk is { } disk && disk != DiskState.UpToDate).ToList();
            if (behind.Count > 0)
            {
                risks.Add(new Risk(RiskSeverity.Warning, "copy-behind",
                    $"volume {volume.Name} is not up to date on [{string.Join(", ", behind)}]: those hosts cannot take its VM yet", behind, users));
            }
        }

        foreach (var host in state.Hosts.Values.Where(h => h.Role == HostRole.Member).OrderBy(h => h.Name, StringComparer.Ordinal))
        {
            if (host.Fenced is { } fenced)
            {
                risks.Add(new Risk(RiskSeverity.Warning, "fenced", $"{host.Name} is fenced since {fenced.At:u} ({fenced.Reason})", [host.Name], []));
            }

            if (host.Maintenance is { } maintenance)
            {
                risks.Add(new Risk(RiskSeverity.Warning, "maintenance", $"{host.Name} is in maintenance since {maintenance.Since:u}: it takes no VMs", [host.Name], []));
            }

            if (state.Report(host.Name).Resources is null)
            {
                risks.Add(new Risk(RiskSeverity.Warning, "no-capacity", $"{host.Name} has not reported its memory and CPUs: placement takes it as unbounded", [host.Name], []));
            }
        }

        return risks;
    }
}
