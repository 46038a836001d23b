namespace Ferry.Agent.Api;

/// <summary>Body of POST /api/v1/volumes.</summary>
public sealed record CreateVolumeRequest(string Name, long Size);

/// <summary>Body of POST /api/v1/volumes/{name}/resize; shrinking discards data and must be asked for.</summary>
public sealed record ResizeVolumeRequest(long Size, bool Shrink = false);
