using Ferry.Agent.Api;
using Ferry.Agent.Cluster;
using Ferry.Agent.Events;
using Ferry.Agent.Vms;
using Ferry.Agent.Volumes;
using Ferry.Storage.Nbd;
using Ferry.Storage.Volumes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Ferry.Agent;

/// <summary>The `ferry agent` process: wiring of the VM manager, the event log and the REST API.</summary>
public static class AgentHost
{
    public static async Task RunAsync(AgentOptions options, CancellationToken ct)
    {
        Directory.CreateDirectory(options.DataDirectory);
        var builder = WebApplication.CreateSlimBuilder();
        var local = new Uri(options.Listen);
        var peer = System.Net.IPEndPoint.Parse(options.PeerListen);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            if (local.IsLoopback && local.Host == "localhost")
            {
                kestrel.ListenLocalhost(local.Port);
            }
            else
            {
                kestrel.Listen(System.Net.IPAddress.Parse(local.Host), local.Port);
            }

            // The peer API: HTTPS with this host's cluster certificate (none until it is in a cluster, so no
            // handshake succeeds before then); a client certificate is optional here and required by the routes.
            kestrel.Listen(peer, listen => listen.UseHttps(https =>
            {
                https.ServerCertificateSelector = (_, _) => kestrel.ApplicationServices.GetRequiredService<ClusterService>().HostCertificate;
                https.ClientCertificateMode = ClientCertificateMode.AllowCertificate;
                https.ClientCertificateValidation = (certificate, _, _) => kestrel.ApplicationServices.GetRequiredService<ClusterService>().Accepts(certificate);
            }));
        });
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
            o.UseUtcTimestamp = true;
        });
        builder.Logging.AddFilter("Microsoft", LogLevel.Warning);

        // The consensus library logs every unreachable peer, with a stack trace, several times a second; its
        // messages are there when asked for (Logging__LogLevel__DotNext=Debug in the agent's environment).
        if (builder.Configuration["Logging:LogLevel:DotNext"] is null)
        {
            builder.Logging.AddFilter("DotNext", LogLevel.Error);
        }
        builder.Services.Configure<JsonOptions>(o => FerryJson.Configure(o.SerializerOptions));
        builder.Services.AddProblemDetails();
        builder.Services.AddOpenApi();
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSingleton(sp => new EventLog(Path.Combine(options.DataDirectory, "events.jsonl"), sp.GetRequiredService<TimeProvider>()));
        builder.Services.AddSingleton(_ => FileVmRegistry.Load(options.VmsDirectory));
        builder.Services.AddSingleton<IVmRegistry>(sp => sp.GetRequiredService<FileVmRegistry>());
        builder.Services.AddSingleton(sp => VolumeStore.Open(options.VolumesDirectory, sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILoggerFactory>().CreateLogger("Ferry.Storage")));
        builder.Services.AddSingleton<VmManager>();
        builder.Services.AddSingleton<INbdExportProvider, VolumeExports>();
        builder.Services.AddSingleton<VolumeReplication>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<VolumeReplication>());
        builder.Services.AddHostedService<NbdService>();
        builder.Services.AddSingleton<ClusterService>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<ClusterService>());
        builder.Services.AddSingleton<ClusterWorkloads>();
        builder.Services.AddSingleton<LeaseService>();
        builder.Services.AddSingleton<Watchdog.WatchdogLauncher>();
        builder.Services.AddSingleton<HealthProbes>();
        builder.Services.AddSingleton<Fencer>();
        builder.Services.AddSingleton<LeaseKeeper>();
        builder.Services.AddSingleton<MigrationSource>();
        builder.Services.AddSingleton<MigrationTarget>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<LeaseKeeper>());
        builder.Services.AddHostedService<LeaderlessRecovery>();
        builder.Services.AddHostedService<LocalManager>();
        builder.Services.AddHostedService<ResourceManager>();

        await using var app = builder.Build();
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.MapOpenApi();
        VmEndpoints.Map(app);
        VolumeEndpoints.Map(app);
        ClusterEndpoints.Map(app, $"*:{peer.Port}");
        WorkloadEndpoints.Map(app);

        var manager = app.Services.GetRequiredService<VmManager>();
        await manager.InitializeAsync(ct).ConfigureAwait(false);
        try
        {
            await app.StartAsync(ct).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            throw new AgentStartException($"{e.Message} (does another agent run here? give each its own --listen, --peer-listen, --consensus-listen and --nbd-listen)", e);
        }

        Log.Listening(app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Ferry.Agent"), options.Listen, options.DataDirectory);
        await app.WaitForShutdownAsync(ct).ConfigureAwait(false);
    }
}

/// <summary>The agent could not start (a port taken): said to the operator, without a stack.</summary>
public sealed class AgentStartException(string message, Exception? inner = null) : Exception(message, inner);
