using Ferry.Hypervisor;

namespace Ferry.Agent;

/// <summary>How an agent runs on its host.</summary>
public sealed record AgentOptions
{
    public const string DefaultListen = "http://127.0.0.1:7480";

    public required string DataDirectory { get; init; }

    public string Listen { get; init; } = DefaultListen;

    public string QemuBinary { get; init; } = "qemu-system-x86_64";

    public AcceleratorChoice Accelerator { get; init; } = AcceleratorChoice.Auto;

    /// <summary>How long a graceful stop waits for the guest to power off before QEMU is told to quit.</summary>
    public TimeSpan StopTimeout { get; init; } = TimeSpan.FromSeconds(30);

    public string VmsDirectory => Path.Combine(DataDirectory, "vms");

    public string VolumesDirectory => Path.Combine(DataDirectory, "volumes");

    /// <summary>The NBD socket local QEMU processes attach volumes through (export name = volume name).</summary>
    public string NbdSocket => Path.Combine(DataDirectory, "nbd.sock");

    /// <summary>An optional TCP address for NBD clients on other hosts or tools (host:port); none by default.</summary>
    public string? NbdListen { get; init; }

    /// <summary>PEM certificate for NBD over TCP; when given, TCP clients must use TLS.</summary>
    public string? NbdTlsCertificate { get; init; }

    /// <summary>This host's name among the hosts holding copies of a volume.</summary>
    public string HostName { get; init; } = Environment.MachineName;

    /// <summary>Where primaries on other hosts connect to replicate volumes (host:port); none by default.</summary>
    public string? ReplicationListen { get; init; }

    /// <summary>
    /// The durable record of granted epochs and Outdated copies (until the cluster state owns them).
    /// Hosts that share it share the authority.
    /// </summary>
    public string? ReplicationAuthority { get; init; }

    /// <summary>PEM certificate naming this host for replication links; with <see cref="ReplicationTlsAuthority"/>, links use TLS both ways.</summary>
    public string? ReplicationTlsCertificate { get; init; }

    /// <summary>PEM private key of <see cref="ReplicationTlsCertificate"/> (null: the key is in the certificate file).</summary>
    public string? ReplicationTlsKey { get; init; }

    /// <summary>PEM certificate authority that every peer's replication certificate must chain to.</summary>
    public string? ReplicationTlsAuthority { get; init; }

    public string AuthorityFile => ReplicationAuthority ?? Path.Combine(DataDirectory, "replication-authority.json");

    /// <summary>IP:port of this host's consensus (Raft) endpoint, as other hosts reach it.</summary>
    public string ConsensusListen { get; init; } = "127.0.0.1:7470";

    /// <summary>IP:port of this host's peer API (HTTPS with cluster certificates), as other hosts reach it.</summary>
    public string PeerListen { get; init; } = "127.0.0.1:7471";

    public Ferry.Cluster.Consensus.ConsensusTiming ConsensusTiming { get; init; } = new();

    /// <summary>A hardware watchdog device the watchdog feeds while the lease holds (null: none).</summary>
    public string? WatchdogDevice { get; init; }

    /// <summary>Memory this host gives placement, in MiB (null: all of it, from /proc/meminfo).</summary>
    public long? MemoryMiB { get; init; }

    /// <summary>CPUs this host gives placement (null: all of them).</summary>
    public int? Cpus { get; init; }

    /// <summary>Memory the host keeps for itself and its agent: never given to VMs.</summary>
    public long ReservedMiB { get; init; } = DefaultReservedMiB;

    public const long DefaultReservedMiB = 1024;

    /// <summary>PEM private key of <see cref="NbdTlsCertificate"/> (null: the key is in the certificate file).</summary>
    public string? NbdTlsKey { get; init; }
}
