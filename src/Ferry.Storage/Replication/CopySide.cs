namespace Ferry.Storage.Replication;

/// <summary>One end of a connection between two copies, seen from the host deciding.</summary>
public enum CopySide
{
    Local,
    Peer,
}
