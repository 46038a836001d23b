using System.Runtime.InteropServices;

namespace Ferry.IntegrationTests;

/// <summary>What the page cache holds of a file (Linux cachestat(2), 6.5 and later): whether writes are still only in memory.</summary>
internal static partial class PageCache
{
    private const long CachestatSyscall = 451;

    /// <summary>Pages of <paramref name="path"/> written and not yet on disk (dirty or under writeback).</summary>
    public static long NotOnDisk(string path)
    {
        using var file = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
        var range = new CachestatRange(0, 0); // length 0: to the end of the file
        if (Syscall(CachestatSyscall, (int)file.DangerousGetHandle(), ref range, out var stat, 0) != 0)
        {
            throw new IOException($"cachestat of {path} failed: errno {Marshal.GetLastPInvokeError()}");
        }

        return (long)(stat.Dirty + stat.Writeback);
    }

    [StructLayout(LayoutKind.Sequential)]
    private readonly record struct CachestatRange(ulong Offset, ulong Length);

    [StructLayout(LayoutKind.Sequential)]
    private readonly record struct Cachestat(ulong Cache, ulong Dirty, ulong Writeback, ulong Evicted, ulong RecentlyEvicted);

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall(long number, int fd, ref CachestatRange range, out Cachestat stat, uint flags);
}
