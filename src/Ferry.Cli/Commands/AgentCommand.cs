using System.CommandLine;
using Ferry.Agent;
using Ferry.Hypervisor;

namespace Ferry.Cli.Commands;

/// <summary>`ferry agent`: the daemon of a host.</summary>
internal static class AgentCommand
{
    public static Command Build()
    {
        var data = new Option<string>("--data") { Description = "Data directory", DefaultValueFactory = _ => "/var/lib/ferry" };
        var listen = new Option<string>("--listen") { Description = "API address", DefaultValueFactory = _ => AgentOptions.DefaultListen };
        var qemu = new Option<string>("--qemu") { Description = "QEMU binary", DefaultValueFactory = _ => "qemu-system-x86_64" };
        var accel = new Option<AcceleratorChoice>("--accel") { Description = "auto (KVM if a probe VM boots), kvm or tcg", DefaultValueFactory = _ => AcceleratorChoice.Auto };
        var nbdListen = new Option<string?>("--nbd-listen") { Description = "Also serve volumes over NBD on this TCP address (e.g. 127.0.0.1:10809)" };
        var nbdCert = new Option<string?>("--nbd-tls-cert") { Description = "PEM certificate for NBD over TCP; TCP clients must then use TLS" };
        var nbdKey = new Option<string?>("--nbd-tls-key") { Description = "PEM private key for --nbd-tls-cert (if not in the same file)" };
        var hostName = new Option<string>("--host-name") { Description = "This host's name among the hosts holding volume copies", DefaultValueFactory = _ => Environment.MachineName };
        var replicationListen = new Option<string?>("--replication-listen") { Description = "Accept replication links from primaries on this TCP address (e.g. 0.0.0.0:7481)" };
        var replicationCert = new Option<string?>("--replication-tls-cert") { Description = "PEM certificate of this host for replication links (names the host); links then use TLS both ways" };
        var replicationKey = new Option<string?>("--replication-tls-key") { Description = "PEM private key for --replication-tls-cert (if not in the same file)" };
        var replicationCa = new Option<string?>("--replication-tls-ca") { Description = "PEM certificate authority that peers' replication certificates must chain to" };
        var authority = new Option<string?>("--replication-authority") { Description = "File recording granted epochs and Outdated copies (default: in the data directory)" };
        var consensusListen = new Option<string>("--consensus-listen") { Description = "IP:PORT of this host's consensus endpoint, as other hosts reach it", DefaultValueFactory = _ => "127.0.0.1:7470" };
        var peerListen = new Option<string>("--peer-listen") { Description = "IP:PORT of this host's peer API (HTTPS, cluster certificates), as other hosts reach it", DefaultValueFactory = _ => "127.0.0.1:7471" };
        var watchdogDevice = new Option<string>("--watchdog-device")
        {
            Description = "Hardware watchdog the host's watchdog feeds while the lease holds: auto (/dev/watchdog if present), none, or a path",
            DefaultValueFactory = _ => "auto",
        };
        var memory = new Option<string?>("--memory") { Description = "Memory placement may give VMs on this host, reserve included, e.g. 64G (default: all of it)" };
        var cpus = new Option<int?>("--cpus") { Description = "CPUs placement counts on this host (default: all of them)" };
        var reserve = new Option<string>("--reserve") { Description = "Memory the host keeps for itself, never given to VMs", DefaultValueFactory = _ => $"{AgentOptions.DefaultReservedMiB}M" };
        var stopTimeout = new Option<int>("--stop-timeout") { Description = "Seconds a graceful stop waits for the guest", DefaultValueFactory = _ => 30 };

        var command = new Command("agent", "Run the Ferry agent on this host") { data, listen, qemu, accel, nbdListen, nbdCert, nbdKey, hostName, replicationListen, replicationCert, replicationKey, replicationCa, authority, consensusListen, peerListen, watchdogDevice, memory, cpus, reserve, stopTimeout };
        command.SetAction(async (parse, ct) =>
        {
            if (parse.GetValue(stopTimeout) is var seconds and (< 1 or > 3600))
            {
                return CliContext.Fail(FerryError.InvalidArgument($"invalid --stop-timeout {seconds}: give 1 to 3600 seconds"));
            }

            if (parse.GetValue(nbdListen) is { } address && !System.Net.IPEndPoint.TryParse(address, out _))
            {
                return CliContext.Fail(FerryError.InvalidArgument($"invalid --nbd-listen '{address}': give ADDRESS:PORT, e.g. 127.0.0.1:10809"));
            }

            foreach (var (name, value) in new[] { ("--consensus-listen", parse.GetValue(consensusListen)!), ("--peer-listen", parse.GetValue(peerListen)!) })
            {
                if (!System.Net.IPEndPoint.TryParse(value, out var endpoint) || endpoint.Port == 0)
                {
                    return CliContext.Fail(FerryError.InvalidArgument($"invalid {name} '{value}': give IP:PORT, e.g. 10.0.0.1:7470"));
                }
            }

            if ((parse.GetValue(replicationCert) is null) != (parse.GetValue(replicationCa) is null))
            {
                return CliContext.Fail(FerryError.InvalidArgument(
                    "replication over TLS needs both --replication-tls-cert (this host's certificate) and --replication-tls-ca (the authority peers' certificates chain to)"));
            }

            foreach (var file in new[] { parse.GetValue(nbdCert), parse.GetValue(nbdKey), parse.GetValue(replicationCert), parse.GetValue(replicationKey), parse.GetValue(replicationCa) })
            {
                if (file is not null && !File.Exists(file))
                {
                    return CliContext.Fail(FerryError.InvalidArgument($"TLS file '{file}' does not exist"));
                }
            }

            long? memoryMiB = null;
            if (parse.GetValue(memory) is { } memoryText)
            {
                if (!SizeParser.ParseMiB(memoryText).TryGetValue(out var parsed, out var memoryError))
                {
                    return CliContext.Fail(memoryError);
                }

                memoryMiB = parsed;
            }

            if (!SizeParser.ParseMiB(parse.GetValue(reserve)!).TryGetValue(out var reservedMiB, out var reserveError))
            {
                return CliContext.Fail(reserveError);
            }

            if (parse.GetValue(cpus) is < 1)
            {
                return CliContext.Fail(FerryError.InvalidArgument($"invalid --cpus {parse.GetValue(cpus)}: give 1 or more"));
            }

            var options = new AgentOptions
            {
                MemoryMiB = memoryMiB,
                Cpus = parse.GetValue(cpus),
                ReservedMiB = reservedMiB,
                DataDirectory = Path.GetFullPath(parse.GetValue(data)!),
                Listen = parse.GetValue(listen)!,
                QemuBinary = parse.GetValue(qemu)!,
                Accelerator = parse.GetValue(accel),
                StopTimeout = TimeSpan.FromSeconds(parse.GetValue(stopTimeout)),
                NbdListen = parse.GetValue(nbdListen),
                NbdTlsCertificate = FullPath(parse.GetValue(nbdCert)),
                NbdTlsKey = FullPath(parse.GetValue(nbdKey)),
                HostName = parse.GetValue(hostName)!,
                ReplicationListen = parse.GetValue(replicationListen),
                ReplicationAuthority = FullPath(parse.GetValue(authority)),
                ReplicationTlsCertificate = FullPath(parse.GetValue(replicationCert)),
                ReplicationTlsKey = FullPath(parse.GetValue(replicationKey)),
                ReplicationTlsAuthority = FullPath(parse.GetValue(replicationCa)),
                ConsensusListen = parse.GetValue(consensusListen)!,
                PeerListen = parse.GetValue(peerListen)!,
                WatchdogDevice = parse.GetValue(watchdogDevice) switch
                {
                    "auto" => File.Exists("/dev/watchdog") ? "/dev/watchdog" : null,
                    "none" => null,
                    var path => Path.GetFullPath(path!),
                },
            };
            try
            {
                await AgentHost.RunAsync(options, ct).ConfigureAwait(false);
            }
            catch (AgentStartException e)
            {
                return CliContext.Fail(FerryError.Environment($"the agent cannot start: {e.Message}"));
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    private static string? FullPath(string? path) => path is null ? null : Path.GetFullPath(path);
}
