using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Ect.Actors.Tests.RunTests;
using FluentAssertions;
using Xunit;
using Xunit.Abstractions;

namespace Ect.Actors.Tests.Postgres;

/// <summary>
/// Issue 12: a PostgreSQL journal that cannot be reached must end `ect train` at once with one message naming the
/// server, never hang nor start a run elsewhere. No PostgreSQL needed: a closed loopback port (connection refused)
/// and a listener that accepts and never answers (the server's connect timeout, Timeout=3 in the connection string,
/// bounds the wait; Npgsql's default is 15 s).
/// </summary>
public class PostgresUnreachableTests(ITestOutputHelper output)
{
    private static string Hocon => Path.Combine(RepoRoot.Find(), "hocon", "postgres.conf");

    private async Task<(int Code, string Text, TimeSpan Took)> TrainAgainst(string connection)
    {
        var dir = Directory.CreateTempSubdirectory("ect-pg-down-").FullName;
        var clock = Stopwatch.StartNew();
        var (code, text) = await EctProcess.RunToEnd(output,
            ["train", "--config", Hocon, "--run-dir", dir, "--set", "ect.run.engine=fake", "--set", "ect.display.mode=plain"],
            new Dictionary<string, string> { ["ECT_PG_CONNECTION"] = connection }, TimeSpan.FromSeconds(90));
        Directory.GetFiles(dir, "*", SearchOption.AllDirectories).Select(Path.GetFileName)
            .Should().NotContain(["journal.db", "run.json"], "no run starts anywhere else");
        return (code, text, clock.Elapsed);
    }

    private static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    [Fact]
    public async Task A_refused_connection_ends_ect_train_with_exit_1_naming_the_server()
    {
        var port = FreePort();
        var (code, text, took) = await TrainAgainst($"Host=127.0.0.1;Port={port};Username=postgres;Database=postgres;Timeout=3");
        code.Should().Be(1);
        text.Should().Contain($"127.0.0.1:{port}/postgres").And.Contain("cannot connect");
        text.Should().NotContain("   at ", "one message, not a stack trace");
        took.Should().BeLessThan(TimeSpan.FromSeconds(60));
    }

    [Fact]
    public async Task A_server_that_never_answers_ends_ect_train_within_its_connect_timeout()
    {
        using var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        var port = ((IPEndPoint)silent.LocalEndpoint).Port;
        var held = new List<TcpClient>();
        using var stop = new CancellationTokenSource();
        var accepting = Task.Run(async () =>
        {
            try { while (true) held.Add(await silent.AcceptTcpClientAsync(stop.Token)); }
            catch (OperationCanceledException) { }
        });
        try
        {
            var (code, text, took) = await TrainAgainst($"Host=127.0.0.1;Port={port};Username=postgres;Database=postgres;Timeout=3");
            code.Should().Be(1);
            text.Should().Contain($"127.0.0.1:{port}/postgres").And.Contain("cannot connect");
            held.Should().NotBeEmpty("ect did reach the silent server");
            took.Should().BeLessThan(TimeSpan.FromSeconds(60), "bounded by the connect timeout, not a hang");
        }
        finally
        {
            stop.Cancel();
            await accepting;
            foreach (var c in held) c.Dispose();
        }
    }
}
