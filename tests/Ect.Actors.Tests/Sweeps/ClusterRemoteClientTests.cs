using System.Diagnostics;
using Ect.Actors.Cluster;
using Ect.Actors.Tests.Distributed;
using Ect.Actors.Tests.Postgres;
using Ect.Actors.Tests.RunTests;
using FluentAssertions;
using Npgsql;
using Xunit;
using Xunit.Abstractions;

namespace Ect.Actors.Tests.Sweeps;

/// <summary>
/// A node on one "machine" and the `ect sweep` client on another (<see cref="TwoHosts"/>: network namespaces joined by
/// a veth pair). Nodes write to a peer only over connections they open themselves (passive connections off: see
/// ClusterHocon.Node), so the node answers the client over a connection it opens back to the client's address, and
/// the client must bind one the node reaches: its address on the route to the node (ClusterHocon.ClientHostname),
/// not 127.0.0.1 (checked: with the client on 127.0.0.1 this test timed out, "no node of the cluster answered").
/// </summary>
public sealed class ClusterRemoteClientTests(PostgresFixture pg, ITestOutputHelper output) : IClassFixture<PostgresFixture>
{
    [Fact]
    public void A_client_of_a_loopback_cluster_binds_loopback_and_a_bad_cluster_address_is_named()
    {
        ClusterHocon.ClientHostname(["127.0.0.1:4053", "localhost:4054"]).Should().Be("127.0.0.1");
        var bad = () => ClusterHocon.ClientHostname(["10.0.0.1:99999"]);
        bad.Should().Throw<ArgumentException>().WithMessage("*--cluster \"10.0.0.1:99999\"*");
    }

    [NetnsFact]
    public async Task A_client_on_another_host_gets_the_answer_the_node_sends_over_a_connection_it_opens_back()
    {
        await using var db = await ClusterDatabase.CreateAsync(pg.ConnectionString);
        var dir = Directory.CreateTempSubdirectory("ect-remote-client-").FullName;
        using var hosts = new TwoHosts(dir);
        var root = Path.Combine(dir, "runs");
        // The node, in A, reaches the test PostgreSQL (on the host's loopback, another namespace) through its Unix
        // socket: the namespaces share one file system.
        string socketDir;
        await using (var c = new NpgsqlConnection(pg.ConnectionString))
        {
            await c.OpenAsync();
            await using var cmd = new NpgsqlCommand("SHOW unix_socket_directories", c);
            socketDir = ((string)(await cmd.ExecuteScalarAsync())!).Split(',')[0].Trim();
        }
        var journal = new NpgsqlConnectionStringBuilder(db.ConnectionString) { Host = socketDir }.ConnectionString;
        const int port = 25520; // A's own network: every port is free there
        using var node = SweepNodeProcess.Attach(InNamespace(hosts.HostA, "node", "--seed-nodes", $"10.231.7.1:{port}", "--hostname", "10.231.7.1",
            "--port", port.ToString(), "--slots", "1", "--run-root", root, "--journal", journal), port, output);
        await node.WaitForLine(": up; 1 slot", TimeSpan.FromSeconds(90));

        // From B: the only way to A is the veth (10.231.7.2 -> 10.231.7.1); TLS with the run root's certificate.
        using var client = InNamespace(hosts.HostB, "sweep", "status", "no-such-sweep", "--cluster", $"10.231.7.1:{port}",
            "--token-file", ClusterToken.PathIn(root));
        var (o, e) = (client.StandardOutput.ReadToEndAsync(), client.StandardError.ReadToEndAsync());
        try { await client.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(120)); }
        catch (TimeoutException) { client.Kill(entireProcessTree: true); }
        var text = await o + await e;
        output.WriteLine(text);
        client.ExitCode.Should().Be(1, text);
        text.Should().Contain("no sweep named \"no-such-sweep\"", "the node's answer came back to the client on the other host");
    }

    /// <summary>`ip netns exec NS ect ARGS` (ip and env exec in place: the test host stays the parent, ECT_PARENT_PID holds).</summary>
    private static Process InNamespace(string ns, params string[] args)
    {
        var psi = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "netns", "exec", ns, "env", "--default-signal=INT,TERM",
                     $"{Ect.Actors.Sweeps.TrainChild.ParentPidVariable}={Environment.ProcessId}", "dotnet", EctProcess.EctDll }.Concat(args))
            psi.ArgumentList.Add(a);
        return Process.Start(psi)!;
    }
}
