namespace Ferry.Storage.Volumes;

/// <summary>A volume as the API and CLI show it.</summary>
/// <param name="Allocated">Bytes actually stored: the data file without its holes (thin provisioning).</param>
public sealed record VolumeInfo(
    string Name,
    Guid Id,
    long Size,
    long Allocated,
    GenerationIds Generations,
    ulong HighestEpoch,
    DateTimeOffset CreatedAt,
    string DataPath);
