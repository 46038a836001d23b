using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;

namespace Ferry.IntegrationTests.Cluster;

/// <summary>Real agents forming a cluster over loopback: consensus, joins, leader loss, removal, and refusals.</summary>
public class ClusterTests
{
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Three_hosts_form_a_cluster_elect_a_new_leader_when_it_is_killed_and_the_killed_host_rejoins_from_its_log()
    {
        await using var cluster = await LocalCluster.FormAsync(3);
        var status = await cluster["n3"].FerryJsonAsync("cluster", "status");
        Assert.Equal("n1", Leader(status));
        Assert.All(Hosts(status), h =>
        {
            Assert.True(h.GetProperty("voting").GetBoolean(), h.ToString());
            Assert.Equal("reachable", h.GetProperty("health").GetString());
        });
        Assert.Equal(["n1", "n2", "n3"], Hosts(status).Select(h => h.GetProperty("name").GetString()));

        await cluster["n1"].Agent.KillAsync();
        var leader = await Wait.UntilAsync(async () =>
        {
            var seen = await cluster["n2"].LocalStatusAsync();
            return Leader(seen) is { } name && name != "n1" ? name : null;
        }, Settle, "a new leader among n2 and n3");

        // The API keeps answering, and writes commit, from either survivor.
        foreach (var survivor in new[] { "n2", "n3" })
        {
            await cluster[survivor].TokenAsync();
        }

        var after = await cluster["n2"].FerryJsonAsync("cluster", "status");
        Assert.Equal(leader, Leader(after));
        Assert.Equal("unreachable", Hosts(after).Single(h => h.GetProperty("name").GetString() == "n1").GetProperty("health").GetString());

        await cluster["n1"].Agent.LaunchAsync();
        var commit = after.GetProperty("commitIndex").GetInt64();
        await Wait.UntilAsync(async () =>
        {
            var seen = await cluster["n1"].LocalStatusAsync();
            return Leader(seen) == leader && seen.GetProperty("appliedIndex").GetInt64() >= commit;
        }, Settle, "n1 to rejoin and catch up");
        await cluster["n1"].TokenAsync();
    }

    [Fact]
    public async Task A_minority_refuses_writes_and_catches_up_when_the_others_return()
    {
        await using var cluster = await LocalCluster.FormAsync(3);
        await cluster["n1"].Agent.PauseAsync();
        await cluster["n2"].Agent.PauseAsync();

        var refused = await cluster["n3"].FerryAsync("cluster", "join-token");
        Assert.True(refused.ExitCode == 6, refused.StandardError + cluster["n3"].Agent.Log);
        Assert.Contains("no quorum", refused.StandardError);

        await cluster["n1"].Agent.ResumeAsync();
        await cluster["n2"].Agent.ResumeAsync();
        await Wait.UntilAsync(async () => (await cluster["n3"].FerryAsync("cluster", "join-token")).ExitCode == 0, Settle, "writes through n3 after the majority is back");
        var leaderView = await cluster["n1"].FerryJsonAsync("cluster", "status");
        await Wait.UntilAsync(async () =>
            (await cluster["n3"].LocalStatusAsync()).GetProperty("appliedIndex").GetInt64() >= leaderView.GetProperty("commitIndex").GetInt64(),
            Settle, "n3 to catch up");
    }

    [Fact]
    public async Task A_removed_host_leaves_the_group_and_can_join_again_with_a_new_token()
    {
        await using var cluster = await LocalCluster.FormAsync(3);
        var removed = await cluster["n2"].FerryJsonAsync("node", "remove", "n3");
        Assert.Equal(["n1", "n2"], Hosts(removed).Select(h => h.GetProperty("name").GetString()));

        await Wait.UntilAsync(async () => (await cluster["n3"].FerryAsync("cluster", "status", "--local")).StandardError.Contains("not part of a cluster"),
            Settle, "n3 to notice it was removed");
        Assert.Contains("no host named 'n3'", (await cluster["n1"].FerryAsync("node", "remove", "n3")).StandardError);

        var rejoined = await LocalCluster.JoinAsync(cluster["n3"], cluster["n1"]);
        Assert.Equal(["n1", "n2", "n3"], Hosts(rejoined).Select(h => h.GetProperty("name").GetString()));
        await cluster["n3"].TokenAsync();
    }

    // The tests dial hosts by address, not name; what they check is the client certificate the server accepts.
#pragma warning disable CA5359
    [Fact]
    public async Task Used_wrong_malformed_and_foreign_tokens_are_refused_and_a_certificate_from_another_cluster_is_refused()
    {
        await using var cluster = await LocalCluster.FormAsync(2);
        await using var other = await LocalCluster.FormAsync(1, "other", prefix: "x");
        var n1 = cluster["n1"];
        var token = await n1.TokenAsync();
        await LocalCluster.JoinAsync(await cluster.StartHostAsync("n3"), n1, token);

        var outsider = await cluster.StartHostAsync("n4");
        Assert.Contains("already used by host 'n3'", await JoinRefusalAsync(token));
        var parts = (await n1.TokenAsync()).Split('.');
        Assert.Contains("secret is wrong", await JoinRefusalAsync($"{parts[0]}.{parts[1]}.{new string('0', parts[2].Length)}.{parts[3]}"));
        Assert.Contains("malformed join token", await JoinRefusalAsync("not-a-token"));
        Assert.Contains("belongs to another cluster", await JoinRefusalAsync(await other["x1"].TokenAsync()));
        Assert.Contains("not part of a cluster", (await outsider.FerryAsync("cluster", "status")).StandardError);

        // Another cluster's host certificate opens neither the peer API nor the consensus port; this cluster's does.
        var foreign = HostCertificate(other["x1"]);
        var own = HostCertificate(cluster["n2"]);
        Assert.False(await TlsAcceptedAsync(n1.PeerAddress, foreign));
        Assert.False(await TlsAcceptedAsync(n1.ConsensusAddress, foreign));
        Assert.True(await TlsAcceptedAsync(n1.PeerAddress, own));
        Assert.True(await TlsAcceptedAsync(n1.ConsensusAddress, own));

        // Without a certificate, only the join steps answer.
        using var anonymous = new HttpClient(new SocketsHttpHandler { SslOptions = { RemoteCertificateValidationCallback = (_, _, _, _) => true } });
        using var refused = await anonymous.PostAsync($"https://{n1.PeerAddress}/peer/commands", new StringContent("{}", System.Text.Encoding.UTF8, "application/json"));
        Assert.Contains("present the host's cluster certificate", await refused.Content.ReadAsStringAsync());

        var status = await n1.FerryJsonAsync("cluster", "status");
        Assert.Equal(["n1", "n2", "n3"], Hosts(status).Select(h => h.GetProperty("name").GetString()));

        async Task<string> JoinRefusalAsync(string joinToken)
        {
            var output = await outsider.FerryAsync("node", "join", n1.PeerAddress, "--token", joinToken);
            Assert.NotEqual(0, output.ExitCode);
            return output.StandardError;
        }
    }

    private static X509Certificate2 HostCertificate(ClusterHost host) => X509Certificate2.CreateFromPemFile(
        Path.Combine(host.Agent.DataDirectory, "cluster", "host.pem"), Path.Combine(host.Agent.DataDirectory, "cluster", "host-key.pem"));

    /// <summary>
    /// Whether the server at <paramref name="address"/> keeps a TLS connection with <paramref name="certificate"/> open.
    /// In TLS 1.3 the server judges the client's certificate after the client's side of the handshake is done,
    /// so a refusal shows as the connection closing at once; an accepted client is left waiting for its request.
    /// </summary>
    private static async Task<bool> TlsAcceptedAsync(string address, X509Certificate2 certificate)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(System.Net.IPEndPoint.Parse(address));
        await using var tls = new SslStream(client.GetStream());
        try
        {
            using var handshake = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await tls.AuthenticateAsClientAsync(
                new SslClientAuthenticationOptions
                {
                    TargetHost = "ferry",
                    ClientCertificates = [certificate],
                    RemoteCertificateValidationCallback = (_, _, _, _) => true,
                },
                handshake.Token);
            using var quiet = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            var read = await tls.ReadAsync(new byte[16], quiet.Token);
            return read < 0;
        }
        catch (OperationCanceledException)
        {
            return true;
        }
        catch (Exception e) when (e is System.Security.Authentication.AuthenticationException or IOException)
        {
            return false;
        }
    }

#pragma warning restore CA5359

    private static string? Leader(JsonElement status) => status.TryGetProperty("leader", out var leader) ? leader.GetString() : null;

    private static JsonElement.ArrayEnumerator Hosts(JsonElement status) => status.GetProperty("hosts").EnumerateArray();
}
