using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Ferry.Hypervisor;

namespace Ferry.Tests.Hypervisor;

/// <summary>The QMP client against a scripted peer on a real Unix socket.</summary>
public sealed class QmpClientTests : IDisposable
{
    private const string Greeting = """{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": []}}""";

    private readonly TempDirectory _dir = new();
    private readonly Socket _listener;
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromSeconds(20));

    public QmpClientTests()
    {
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _listener.Bind(new UnixDomainSocketEndPoint(SocketPath));
        _listener.Listen();
    }

    private string SocketPath => Path.Combine(_dir.Path, "qmp.sock");

    private CancellationToken Ct => _timeout.Token;

    /// <summary>A fake QEMU: sends the greeting, answers qmp_capabilities, then runs the test's script.</summary>
    private async Task ServeAsync(Func<StreamReader, StreamWriter, Task> script)
    {
        using var peer = await _listener.AcceptAsync(Ct);
        await using var stream = new NetworkStream(peer, ownsSocket: false);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        await using var writer = new StreamWriter(stream, new UTF8Encoding(false)) { AutoFlush = true, NewLine = "\n" };
        await writer.WriteLineAsync(Greeting);
        var caps = await ReadCommandAsync(reader);
        Assert.Equal("qmp_capabilities", caps.Execute);
        await writer.WriteLineAsync($$"""{"return": {}, "id": {{caps.Id}}}""");
        await script(reader, writer);
    }

    private static async Task<(string Execute, long Id, JsonElement Arguments)> ReadCommandAsync(StreamReader reader)
    {
        var line = await reader.ReadLineAsync() ?? throw new EndOfStreamException();
        using var doc = JsonDocument.Parse(line);
        var root = doc.RootElement;
        return (root.GetProperty("execute").GetString()!, root.GetProperty("id").GetInt64(),
            root.TryGetProperty("arguments", out var a) ? a.Clone() : default);
    }

    [Fact]
    public async Task Commands_are_answered_by_id_even_out_of_order()
    {
        var server = ServeAsync(async (reader, writer) =>
        {
            var first = await ReadCommandAsync(reader);
            var second = await ReadCommandAsync(reader);
            await writer.WriteLineAsync($$"""{"return": {"status": "paused"}, "id": {{second.Id}}}""");
            await writer.WriteLineAsync($$"""{"return": {"status": "running"}, "id": {{first.Id}}}""");
        });
        await using var client = await QmpClient.ConnectAsync(SocketPath, TimeProvider.System, Ct);
        var a = client.ExecuteAsync("query-status", null, Ct);
        var b = client.ExecuteAsync("query-status", new { verbose = true }, Ct);
        Assert.Equal("running", (await a).GetProperty("status").GetString());
        Assert.Equal("paused", (await b).GetProperty("status").GetString());
        await server;
    }

    [Fact]
    public async Task Errors_become_exceptions_with_the_class_and_description()
    {
        var server = ServeAsync(async (reader, writer) =>
        {
            var command = await ReadCommandAsync(reader);
            await writer.WriteLineAsync($$"""{"error": {"class": "CommandNotFound", "desc": "The command nope has not been found"}, "id": {{command.Id}}}""");
        });
        await using var client = await QmpClient.ConnectAsync(SocketPath, TimeProvider.System, Ct);
        var error = await Assert.ThrowsAsync<QmpException>(() => client.ExecuteAsync("nope", null, Ct));
        Assert.Equal("CommandNotFound", error.ErrorClass);
        Assert.Contains("has not been found", error.Message, StringComparison.Ordinal);
        await server;
    }

    [Fact]
    public async Task Events_arrive_in_order_and_end_when_the_peer_closes()
    {
        var server = ServeAsync(async (_, writer) =>
        {
            await writer.WriteLineAsync("""{"timestamp": {"seconds": 1700000000, "microseconds": 5}, "event": "STOP"}""");
            await writer.WriteLineAsync("""{"timestamp": {"seconds": 1700000001, "microseconds": 0}, "event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-shutdown"}}""");
        });
        await using var client = await QmpClient.ConnectAsync(SocketPath, TimeProvider.System, Ct);
        await server;
        var events = new List<QmpEvent>();
        await foreach (var e in client.Events.ReadAllAsync(Ct))
        {
            events.Add(e);
        }

        Assert.Equal(["STOP", "SHUTDOWN"], events.Select(e => e.Name));
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(1700000000).AddTicks(50), events[0].Timestamp);
        Assert.Equal((true, "guest-shutdown"), QmpEvents.Shutdown(events[1]));
        await client.Completion.WaitAsync(Ct);
    }

    [Fact]
    public async Task A_command_pending_when_the_peer_dies_fails_instead_of_hanging()
    {
        var server = ServeAsync(async (reader, _) => await ReadCommandAsync(reader));
        await using var client = await QmpClient.ConnectAsync(SocketPath, TimeProvider.System, Ct);
        var pending = client.ExecuteAsync("quit", null, Ct);
        await server;
        await Assert.ThrowsAsync<QmpException>(() => pending);
    }

    [Fact]
    public async Task A_command_without_an_answer_times_out()
    {
        var server = ServeAsync(async (reader, _) =>
        {
            await ReadCommandAsync(reader);
            await Task.Delay(TimeSpan.FromSeconds(2), Ct);
        });
        await using (var client = await QmpClient.ConnectAsync(SocketPath, TimeProvider.System, Ct))
        {
            client.CommandTimeout = TimeSpan.FromMilliseconds(300);
            var error = await Assert.ThrowsAsync<QmpException>(() => client.ExecuteAsync("query-status", null, Ct));
            Assert.Contains("timed out", error.Message, StringComparison.Ordinal);
        }

        await server;
    }

    [Fact]
    public async Task Garbage_from_the_peer_ends_the_connection_without_throwing_elsewhere()
    {
        var server = ServeAsync(async (_, writer) => await writer.WriteLineAsync("this is not json"));
        await using var client = await QmpClient.ConnectAsync(SocketPath, TimeProvider.System, Ct);
        await server;
        await client.Completion.WaitAsync(Ct);
        await Assert.ThrowsAsync<QmpException>(() => client.ExecuteAsync("query-status", null, Ct));
    }

    [Fact]
    public async Task A_peer_without_a_greeting_is_refused()
    {
        var server = Task.Run(async () =>
        {
            using var peer = await _listener.AcceptAsync(Ct);
            await peer.SendAsync("{\"hello\": 1}\n"u8.ToArray(), Ct);
        });
        await Assert.ThrowsAsync<QmpException>(() => QmpClient.ConnectAsync(SocketPath, TimeProvider.System, Ct));
        await server;
    }

    public void Dispose()
    {
        _listener.Dispose();
        _timeout.Dispose();
        _dir.Dispose();
    }
}
