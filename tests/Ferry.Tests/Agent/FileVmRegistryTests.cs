using Ferry.Agent.Vms;
using Ferry.Hypervisor;

namespace Ferry.Tests.Agent;

public sealed class FileVmRegistryTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    private static VmRecord Record(string name) =>
        new(new VmSpec { Name = name, Disks = [new DiskSpec("/d.raw")], Nics = [new NicSpec { Forwards = [new PortForward(1, 2)] }] }, DesiredState.Stopped, DateTimeOffset.UnixEpoch);

    [Fact]
    public async Task Records_survive_a_reload_with_every_field()
    {
        using (var registry = FileVmRegistry.Load(_dir.Path))
        {
            Assert.Null(await registry.AddAsync(Record("a"), default));
            Assert.Null(await registry.AddAsync(Record("b"), default));
            await registry.UpdateAsync(Record("b") with { Desired = DesiredState.Running }, default);
        }

        using var reloaded = FileVmRegistry.Load(_dir.Path);
        Assert.Equal(["a", "b"], reloaded.List().Select(r => r.Name));
        Assert.Equal(DesiredState.Running, reloaded.Find("b")!.Desired);
        Assert.Equal(Record("a").Spec.Nics[0].Forwards, reloaded.Find("a")!.Spec.Nics[0].Forwards);
        Assert.Equal(Record("a").Spec.Disks, reloaded.Find("a")!.Spec.Disks);
    }

    [Fact]
    public async Task A_duplicate_name_is_a_conflict_and_changes_nothing()
    {
        using var registry = FileVmRegistry.Load(_dir.Path);
        await registry.AddAsync(Record("a"), default);
        var error = await registry.AddAsync(Record("a") with { Desired = DesiredState.Running }, default);
        Assert.Equal(ErrorCode.Conflict, error?.Code);
        Assert.Equal(DesiredState.Stopped, registry.Find("a")!.Desired);
    }

    [Fact]
    public async Task Removing_deletes_the_record_and_its_directory()
    {
        using (var registry = FileVmRegistry.Load(_dir.Path))
        {
            await registry.AddAsync(Record("a"), default);
            await registry.RemoveAsync("a", default);
            Assert.Null(registry.Find("a"));
        }

        Assert.False(Directory.Exists(Path.Combine(_dir.Path, "a")));
        using var reloaded = FileVmRegistry.Load(_dir.Path);
        Assert.Empty(reloaded.List());
    }

    [Fact]
    public void A_directory_without_a_record_is_ignored()
    {
        Directory.CreateDirectory(Path.Combine(_dir.Path, "leftover"));
        using var registry = FileVmRegistry.Load(_dir.Path);
        Assert.Empty(registry.List());
    }

    public void Dispose() => _dir.Dispose();
}
