using Ect.Actors.Cluster;
using Ect.Actors.Tests.Control;
using Ect.Actors.Tests.Postgres;
using Ect.Actors.Tests.RunTests;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.Sweeps;

/// <summary>
/// Issue 19, point 4: bad input to the cluster commands is refused before anything starts or is submitted, naming the
/// file, key or host and the fix: a node whose PostgreSQL cannot be reached, a node on another address without TLS,
/// and a spec with an unknown key or an empty grid (checked by `ect sweep submit` before it contacts the cluster:
/// the --cluster address here has nobody listening, so a submission that got that far would fail differently).
/// </summary>
public sealed class ClusterRefusalTests(PostgresFixture pg) : IClassFixture<PostgresFixture>
{
    private static async Task<(int Code, string Text)> Ect(params string[] args)
    {
        var (code, o, e, _) = await EctProcess.RunAsync(TimeSpan.FromSeconds(60), args);
        return (code, o + e);
    }

    [Fact]
    public async Task A_node_that_cannot_reach_PostgreSQL_is_refused_naming_the_host_and_port()
    {
        var dead = ControlRemotingTests.FreePort();
        var root = Directory.CreateTempSubdirectory("ect-node-").FullName;
        var (code, text) = await Ect("node", "--seed-nodes", $"127.0.0.1:{ControlRemotingTests.FreePort()}", "--run-root", root,
            "--journal", $"Host=127.0.0.1;Port={dead};Username=postgres;Database=postgres;Timeout=3");
        code.Should().Be(2, text);
        text.Should().Contain($"cannot reach the cluster's PostgreSQL journal at 127.0.0.1:{dead}").And.Contain("nothing was started");
        text.Should().NotContain("joining");
    }

    [Fact]
    public async Task A_node_whose_diagnostic_HOCON_breaks_its_configuration_names_the_variable_and_does_not_start()
    {
        await using var db = await ClusterDatabase.CreateAsync(pg.ConnectionString);
        var root = Directory.CreateTempSubdirectory("ect-node-").FullName;
        var port = ControlRemotingTests.FreePort();
        using var p = EctProcess.Start(["node", "--seed-nodes", $"127.0.0.1:{port}", "--port", port.ToString(), "--run-root", root,
            "--journal", db.ConnectionString], new Dictionary<string, string> { [ClusterHocon.DiagnosticHoconVariable] = "akka.loglevel = NOPE" });
        var (o, e) = (p.StandardOutput.ReadToEndAsync(), p.StandardError.ReadToEndAsync());
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        var text = await o + await e;
        p.ExitCode.Should().Be(2, text);
        text.Should().Contain("NOPE").And.Contain($"{ClusterHocon.DiagnosticHoconVariable} is set");
        text.Should().NotContain("joining");
    }

    [Fact]
    public async Task A_node_on_another_address_without_TLS_is_refused()
    {
        var root = Directory.CreateTempSubdirectory("ect-node-").FullName;
        var (code, text) = await Ect("node", "--seed-nodes", "10.1.2.3:4053", "--hostname", "10.1.2.3", "--port", "4053", "--run-root", root,
            "--journal", "Host=127.0.0.1;Port=1;Username=postgres;Database=postgres", "--insecure-no-tls");
        code.Should().Be(2, text);
        text.Should().Contain("--hostname 10.1.2.3").And.Contain("--insecure-no-tls").And.Contain("mutual TLS");
        text.Should().NotContain("PostgreSQL", "the address is refused before anything else is tried");
    }

    [Fact]
    public async Task A_client_without_the_cluster_certificate_is_refused_naming_the_file_and_the_fix()
    {
        // A token file whose folder has no cluster.pfx (a copied token, say): the client does not fall back to plain TCP.
        var dir = Directory.CreateTempSubdirectory("ect-client-").FullName;
        var token = Path.Combine(dir, ClusterToken.FileName);
        File.WriteAllText(token, new string('a', 64));
        var (code, text) = await Ect("sweep", "status", "any", "--cluster", $"127.0.0.1:{ControlRemotingTests.FreePort()}", "--token-file", token);
        code.Should().Be(2, text);
        text.Should().Contain(Path.Combine(dir, ClusterCertificate.FileName)).And.Contain("file not found").And.Contain("--cluster-cert");
        (code, text) = await Ect("ctl", "status", "--run", "r", "--cluster", $"127.0.0.1:{ControlRemotingTests.FreePort()}", "--token-file", token);
        code.Should().Be(2, text);
        text.Should().Contain(Path.Combine(dir, ClusterCertificate.FileName)).And.Contain("file not found");
    }

    [Theory]
    [InlineData("bogus = 1", "sweep.bogus", "unknown key")]
    [InlineData("grid { \"ect.tuning.double-ticks\" = [] }", "sweep.grid.ect.tuning.double-ticks", "empty list")]
    [InlineData("grid { \"ect.tuning.no-such-key\" = [1, 2] }", "ect.tuning.no-such-key", "unknown configuration key")]
    public async Task A_bad_spec_is_refused_before_anything_is_submitted(string line, string key, string why)
    {
        var dir = Directory.CreateTempSubdirectory("ect-spec-").FullName;
        var spec = Path.Combine(dir, "bad.conf");
        var grid = line.StartsWith("grid", StringComparison.Ordinal) ? "" : "grid { \"ect.tuning.double-ticks\" = [1, 2] }";
        File.WriteAllText(spec, $"sweep {{\n  name = \"bad\"\n  metric = \"fd-resnet18-1step\"\n  {line}\n  {grid}\n}}\n");
        var (code, text) = await Ect("sweep", "submit", spec, "--cluster", $"127.0.0.1:{ControlRemotingTests.FreePort()}");
        code.Should().Be(2, text);
        text.Should().Contain(spec).And.Contain(key).And.Contain(why);
        text.Should().NotContain("no node of the cluster answered", "the spec is refused before the cluster is contacted");
    }
}
