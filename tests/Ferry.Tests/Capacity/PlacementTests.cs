using CsCheck;
using Ferry.Placement;

namespace Ferry.Tests.Capacity;

public class PlacementTests
{
    private static HostCapacity Host(string name, long gib = 16, long reserveGib = 1) => new(name, gib * 1024, 8, reserveGib * 1024);

    private static VmDemand Vm(string name, long gib, string? host = null, string? group = null, params string[] candidates) =>
        new(name, gib * 1024, 1, host, group, candidates.Length == 0 ? null : candidates);

    [Fact]
    public void Identical_hosts_hold_n_plus_one_exactly_while_each_uses_at_most_z()
    {
        // X = 16 GiB, Y = 1 GiB, N = 3: Z = (X - Y)(N - 1)/N = 10 GiB per host.
        HostCapacity[] hosts = [Host("a"), Host("b"), Host("c")];
        VmDemand[] Load(int perHost) => [.. hosts.SelectMany(h => Enumerable.Range(0, perHost).Select(i => Vm($"{h.Name}{i}", 1, h.Name)))];

        Assert.Empty(NPlusOne.Check(hosts, Load(10)));
        var failures = NPlusOne.Check(hosts, Load(11));
        Assert.Equal(["a", "b", "c"], failures.Select(f => f.FailedHost));
        Assert.Equal(3, failures[0].Stranded.Count); // 11 GiB to restart, 2 x 4 GiB free
    }

    [Fact]
    public void A_vm_that_would_break_n_plus_one_is_refused_with_the_host_and_the_vms_concerned()
    {
        HostCapacity[] hosts = [Host("a"), Host("b")];
        VmDemand[] placed = [Vm("web1", 8, "a"), Vm("db", 6, "b")];
        var refused = Placer.Choose(hosts, placed, Vm("big", 4), keepNPlusOne: true);
        Assert.Contains("would break N+1", refused.Error!.Message);
        Assert.Contains("could not restart elsewhere", refused.Error.Message);

        // Without the check it fits, on the host with the most room.
        Assert.Equal("b", Placer.Choose(hosts, placed, Vm("big", 4), keepNPlusOne: false).Value);
    }

    [Fact]
    public void Twins_never_share_a_host_and_a_vm_runs_only_where_its_disks_are()
    {
        HostCapacity[] hosts = [Host("a"), Host("b"), Host("c")];
        VmDemand[] placed = [Vm("web1", 1, "a", "web"), Vm("web2", 1, "b", "web")];
        Assert.Equal("c", Placer.Choose(hosts, placed, Vm("web3", 1, group: "web"), keepNPlusOne: false).Value);
        Assert.Contains("twins", Placer.Choose(hosts, [.. placed, Vm("web3", 1, "c", "web")], Vm("web4", 1, group: "web"), keepNPlusOne: false).Error!.Message);
        Assert.Equal("b", Placer.Choose(hosts, [], Vm("db", 1, null, null, "b"), keepNPlusOne: false).Value);
    }

    [Fact]
    public void Hosts_that_are_not_available_take_nothing_and_do_not_count_as_survivors()
    {
        HostCapacity[] hosts = [Host("a"), Host("b") with { Available = false }];
        Assert.Equal("a", Placer.Choose(hosts, [], Vm("x", 1), keepNPlusOne: false).Value);
        Assert.Equal(["x"], NPlusOne.Check([Host("a"), Host("b") with { Available = false }], [Vm("x", 1, "a")]).Single().Stranded);
    }

    private static readonly Gen<HostCapacity[]> Hosts = Gen.Select(Gen.Int[2, 5], Gen.Long[4, 32], Gen.Long[0, 2], Gen.Int[1, 8])
        .SelectMany((n, gib, reserve, cpus) => Gen.Long[gib / 2, gib].Array[n].Select(sizes =>
            sizes.Select((g, i) => new HostCapacity($"h{i}", g * 1024, cpus, reserve * 1024)).ToArray()));

    private static readonly Gen<VmDemand[]> Vms = Gen.Select(Gen.Int[256, 8192], Gen.Int[1, 4], Gen.OneOf<string?>(null, "a", "b"), Gen.Int[0, 31]).Array[0, 14]
        .Select(vms => vms.Select((v, i) => new VmDemand(
            $"vm{i}", v.Item1, v.Item2, null, v.Item3,
            v.Item4 == 0 ? null : Enumerable.Range(0, 5).Where(h => (v.Item4 & (1 << h)) != 0).Select(h => $"h{h}").ToArray())).ToArray());

    [Fact]
    public void No_plan_breaks_capacity_anti_affinity_candidates_or_n_plus_one_when_kept() =>
        Gen.Select(Hosts, Vms, Gen.Bool).Sample((hosts, vms, keep) =>
        {
            var placed = new List<VmDemand>();
            foreach (var vm in vms)
            {
                var held = NPlusOne.Check(hosts, placed).Count == 0;
                if (!Placer.Choose(hosts, placed, vm, keep).TryGetValue(out var host, out _))
                {
                    continue;
                }

                placed.Add(vm with { Host = host });
                Assert.True(vm.MayRunOn(host), $"{vm.Name} placed on {host}, not among its candidates");
                foreach (var h in hosts)
                {
                    var on = placed.Where(v => v.Host == h.Name).ToList();
                    Assert.True(on.Sum(v => v.MemoryMiB) <= h.UsableMiB && on.Sum(v => v.VCpus) <= h.UsableVCpus, $"{h.Name} over capacity");
                    Assert.True(on.Where(v => v.AntiAffinity is not null).GroupBy(v => v.AntiAffinity).All(g => g.Count() == 1), $"twins on {h.Name}");
                }

                if (keep && held)
                {
                    Assert.Empty(NPlusOne.Check(hosts, placed));
                }
            }
        }, iter: 300);
}
