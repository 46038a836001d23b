using System.Runtime.InteropServices;

namespace Ferry;

/// <summary>Replaces files so that a crash at any moment leaves either the old or the new content.</summary>
public static class DurableFile
{
    public static async Task WriteAllBytesAsync(string path, ReadOnlyMemory<byte> content, CancellationToken ct)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(directory);
        var temp = path + ".tmp";
        await using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 4096, FileOptions.Asynchronous))
        {
            await stream.WriteAsync(content, ct).ConfigureAwait(false);
            stream.Flush(flushToDisk: true);
        }

        File.Move(temp, path, overwrite: true);
        SyncDirectory(directory);
    }

    /// <summary>Makes a rename or a new file in the directory durable (fsync on the directory).</summary>
    public static void SyncDirectory(string directory)
    {
        // .NET cannot open a directory as a file, so this goes to libc directly.
        var fd = Native.Open(directory, Native.ORdOnly | Native.ODirectory | Native.OCloexec);
        if (fd < 0)
        {
            throw new IOException($"cannot open directory '{directory}' to sync it (errno {Marshal.GetLastPInvokeError()})");
        }

        try
        {
            // Some file systems refuse fsync on directories; the rename itself is still atomic there.
            _ = Native.Fsync(fd);
        }
        finally
        {
            _ = Native.Close(fd);
        }
    }
}
