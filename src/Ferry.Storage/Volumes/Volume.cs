using System.Runtime.InteropServices;

namespace Ferry.Storage.Volumes;

/// <summary>
/// One local copy of a volume: its data file and metadata. It is the block device its NBD export
/// serves; the size comes from the superblock (the data file may briefly differ during a resize).
/// </summary>
public sealed class Volume : IBlockDevice, IDisposable
{
    private readonly FileBlockDevice _data;
    private volatile bool _closed;

    internal Volume(string directory, MetadataFile metadata, FileBlockDevice data)
    {
        Directory = directory;
        Metadata = metadata;
        _data = data;
    }

    public string Directory { get; }

    public string Name => Metadata.Current.Name;

    public MetadataFile Metadata { get; }

    public string DataPath => Path.Combine(Directory, VolumeStore.DataFileName);

    public long Size => Metadata.Current.Size;

    public bool IsReadOnly => false;

    public bool FlushIsGlobal => _data.FlushIsGlobal;

    public ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken ct)
    {
        ThrowIfClosed();
        return _data.ReadAsync(offset, destination, ct);
    }

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> source, bool fua, CancellationToken ct)
    {
        ThrowIfClosed();
        return _data.WriteAsync(offset, source, fua, ct);
    }

    /// <summary>Synchronous read, write and zeroing for replication, which orders them with what it sends under one lock.</summary>
    public void Read(long offset, Span<byte> destination)
    {
        ThrowIfClosed();
        _data.Read(offset, destination);
    }

    public void Write(long offset, ReadOnlySpan<byte> source, bool fua)
    {
        ThrowIfClosed();
        _data.Write(offset, source, fua);
    }

    public void WriteFrom(SplicePipe pipe, long offset, int count)
    {
        ThrowIfClosed();
        _data.WriteFrom(pipe, offset, count);
    }

    /// <inheritdoc cref="FileBlockDevice.SendTo"/>
    public long SendTo(SafeHandle socket, long offset, int count)
    {
        ThrowIfClosed();
        return _data.SendTo(socket, offset, count);
    }

    public void WriteZeroes(long offset, long length, WriteZeroesFlags flags)
    {
        ThrowIfClosed();
        _data.WriteZeroes(offset, length, flags);
    }

    public ValueTask FlushAsync(CancellationToken ct)
    {
        ThrowIfClosed();
        return _data.FlushAsync(ct);
    }

    public ValueTask TrimAsync(long offset, long length, bool fua, CancellationToken ct)
    {
        ThrowIfClosed();
        return _data.TrimAsync(offset, length, fua, ct);
    }

    public ValueTask WriteZeroesAsync(long offset, long length, WriteZeroesFlags flags, CancellationToken ct)
    {
        ThrowIfClosed();
        return _data.WriteZeroesAsync(offset, length, flags, ct);
    }

    public ValueTask<int> MapAsync(long offset, long length, Memory<AllocationExtent> extents, CancellationToken ct)
    {
        ThrowIfClosed();
        return _data.MapAsync(offset, length, extents, ct);
    }

    public bool IsHole(long offset, long length)
    {
        ThrowIfClosed();
        return _data.IsHole(offset, length);
    }

    /// <summary>Bytes stored in the data file, summed over its allocated extents.</summary>
    public async Task<long> AllocatedBytesAsync(CancellationToken ct)
    {
        var extents = new AllocationExtent[256];
        long allocated = 0;
        for (long offset = 0; offset < Size;)
        {
            var count = await _data.MapAsync(offset, Size - offset, extents, ct).ConfigureAwait(false);
            for (var i = 0; i < count; i++)
            {
                if ((extents[i].Flags & AllocationFlags.Hole) == 0)
                {
                    allocated += extents[i].Length;
                }

                offset += extents[i].Length;
            }

            if (count == 0)
            {
                break;
            }
        }

        return allocated;
    }

    /// <summary>Grows or shrinks the sparse data file (growing allocates nothing).</summary>
    internal void SetDataLength(long length) => _data.SetLength(length);

    private void ThrowIfClosed()
    {
        if (_closed)
        {
            ThrowClosed();
        }
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private void ThrowClosed() => throw new BlockDeviceException(BlockError.Io, $"volume '{Name}' has been deleted or closed");

    public void Dispose()
    {
        _closed = true;
        _data.Dispose();
        Metadata.Dispose();
    }
}
