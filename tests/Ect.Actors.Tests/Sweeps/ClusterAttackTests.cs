using System.Diagnostics;
using System.Net.Sockets;
using Akka.Actor;
using Ect.Actors.Cluster;
using Ect.Actors.Cluster.Wire;
using Ect.Actors.Tests.Control;
using Ect.Actors.Tests.Postgres;
using Ect.Actors.Tests.RunTests;
using FluentAssertions;
using Xunit;
using Xunit.Abstractions;

namespace Ect.Actors.Tests.Sweeps;

/// <summary>
/// A real `ect node` (separate process, loopback, with --insecure-no-tls: TLS, on by default, would stop these attackers
/// at the handshake (ClusterMembershipTlsTests); here they reach the layers behind it) attacked by local processes that
/// can reach its port but do not hold RUN_ROOT/cluster.token: `ect sweep`/`ect ctl --cluster` with a wrong or missing token, an in-process Akka system
/// that sends a bare string and PoisonPill by selection, a tokenless SubmitSweep straight to the director singleton, an
/// unsigned StartRun straight (not by selection) to the shard region, and raw TCP frames over the size limit. Nothing is
/// submitted, started or cancelled, the node stays up, and the right client is served before and after.
/// </summary>
public sealed class ClusterAttackTests(PostgresFixture pg, ITestOutputHelper output) : IClassFixture<PostgresFixture>
{
    private static string Spec(string dir, string name, int runs, int tuningSteps, int stepMs, bool control)
    {
        var path = Path.Combine(dir, name + ".conf");
        File.WriteAllText(path, $$"""
            sweep {
              name = "{{name}}"
              metric = "fd-resnet18-1step"
              set {
                ect.run.engine = fake
                ect.pretrain.steps = 10
                ect.tuning.steps = {{tuningSteps}}
                ect.checkpoint.every-steps = 10
                ect.evaluation.every-steps = 0
                ect.control.enabled = {{(control ? "on" : "off")}}
                ect.tuning.kimg-per-tick = 0.1
                ect.fake { step-ms = {{stepMs}}, parameters = 4096 }
              }
              grid { "ect.tuning.double-ticks" = [{{string.Join(", ", Enumerable.Range(1, runs))}}] }
            }
            """);
        return path;
    }

    private static async Task<(int Code, string Text)> Ect(params string[] args) => await LoopbackCluster.Ect(args);

    /// <summary>The first test's node and clients run without TLS (its attackers must reach the layers behind it).</summary>
    private const string NoTls = ClusterTls.InsecureOption;

    [Fact]
    public async Task A_node_refuses_clients_without_the_token_foreign_messages_and_huge_frames_and_still_serves_the_right_client()
    {
        await using var c = await LoopbackCluster.StartAsync(pg, output, "ect-cluster-attack-", 1, NoTls);
        var (db, dir, root, node, port) = (c.Db, c.Dir, c.Root, c.Nodes.Single(), c.Ports.Single());
        var cluster = c.Addresses();
        var tokenFile = c.TokenFile;
        File.Exists(ClusterCertificate.PathIn(root)).Should().BeFalse("a node with --insecure-no-tls makes no certificate");
        File.GetUnixFileMode(tokenFile).Should().Be(UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var wrong = Path.Combine(dir, "wrong.token");
        File.WriteAllText(wrong, new string('0', 64));

        // The right client submits a sweep (two short fake-engine runs).
        var name = "ok-" + Guid.NewGuid().ToString("N")[..6];
        var spec = Spec(dir, name, runs: 2, tuningSteps: 40, stepMs: 20, control: false);
        var (code, text) = await Ect("sweep", "submit", spec, "--cluster", cluster, "--token-file", tokenFile, NoTls);
        code.Should().Be(0, text);

        // `ect sweep` and `ect ctl --cluster` with a wrong token, or none: refused, nothing done.
        var evilSpec = Spec(dir, "evil", runs: 1, tuningSteps: 40, stepMs: 20, control: false);
        (code, text) = await Ect("sweep", "submit", evilSpec, "--cluster", cluster, "--token-file", wrong, NoTls);
        code.Should().Be(1, text);
        text.Should().Contain(ClusterToken.Refused);
        (code, text) = await Ect("sweep", "submit", evilSpec, "--cluster", cluster, NoTls);
        code.Should().Be(2, text);
        text.Should().Contain("--token-file is missing");
        (code, text) = await Ect("sweep", "cancel", name, "--cluster", cluster, "--token-file", wrong, NoTls);
        code.Should().Be(1, text);
        text.Should().Contain(ClusterToken.Refused);
        (code, text) = await Ect("sweep", "status", name, "--cluster", cluster, "--token-file", wrong, NoTls);
        code.Should().Be(1, text);
        text.Should().Contain(ClusterToken.Refused);
        (code, text) = await Ect("ctl", "stop", "--run", name + "-000", "--cluster", cluster, "--token-file", wrong, NoTls);
        code.Should().Be(1, text);
        text.Should().Contain(ClusterToken.Refused);

        // An Akka system that reaches the port: bare string and PoisonPill to the receptionist (by selection and
        // directly), a tokenless SubmitSweep straight to the director singleton, an unsigned StartRun straight to the
        // shard region (a path selection does not reach), and a remote deployment.
        var attacker = ActorSystem.Create("attacker", ClusterHocon.Client("127.0.0.1", "enable-ssl = off"));
        try
        {
            var at = $"akka.tcp://{ClusterHocon.SystemName}@127.0.0.1:{port}";
            attacker.ActorSelection($"{at}/user/sweeps").Tell("hello");
            attacker.ActorSelection($"{at}/user/sweeps").Tell(PoisonPill.Instance);
            var provider = ((ExtendedActorSystem)attacker).Provider;
            provider.ResolveActorRef($"{at}/user/sweeps").Tell(PoisonPill.Instance);
            provider.ResolveActorRef($"{at}/user/sweep-director/singleton").Tell(Kill.Instance);
            var evil = new RunSpec { RunId = "evil-000", Sets = { "ect.run.engine=fake", "ect.tuning.steps=10" } };
            provider.ResolveActorRef($"{at}/system/sharding/{SweepRunEntity.TypeName}").Tell(new StartRun { Sweep = "evil", Run = evil });
            attacker.ActorSelection($"{at}/system/sharding/{SweepRunEntity.TypeName}").Tell(new StartRun { Sweep = "evil", Run = evil });
            var direct = await attacker.ActorSelection($"{at}/user/{SweepNode.DirectorName}/singleton").Ask<SweepReply>(
                new SubmitSweep { Sweep = new SweepSubmitted { Name = "evil", Runs = { evil } } }, TimeSpan.FromSeconds(20));
            direct.Ok.Should().BeFalse();
            direct.Message.Should().Be(ClusterToken.Refused);
        }
        finally { await attacker.Terminate(); }

        // Frames over akka.remote's maximum-frame-size (4 MiB): one announcing 2 GiB, one really 5 MiB long. Akka.Remote's
        // frame header is a little-endian 32-bit length.
        foreach (var (header, body) in new[] { (0x7fffffff, 1 << 20), (5 << 20, 5 << 20) })
        {
            using var tcp = new TcpClient();
            await tcp.ConnectAsync("127.0.0.1", port);
            var stream = tcp.GetStream();
            try
            {
                await stream.WriteAsync(BitConverter.GetBytes(header)); // little-endian on x64 and arm64
                await stream.WriteAsync(new byte[body]);
                await stream.FlushAsync();
            }
            catch (IOException) { /* the node closed the connection first: what it should do */ }
        }
        await Task.Delay(TimeSpan.FromSeconds(2));

        // The node is up and serves the right client; nothing of the attacks happened.
        node.Process.HasExited.Should().BeFalse("no attack ends the node");
        await using var client = c.Client(tls: new ClusterTls(null, "", [], Insecure: true));
        var status = await client.Status(name);
        status.Found.Should().BeTrue(status.Message);
        status.Cancelled.Should().BeFalse("a cancel with a wrong token did nothing");
        (await client.Status("evil")).Message.Should().Contain("no sweep named \"evil\"", "nothing was submitted without the token");
        Directory.Exists(Path.Combine(root, "evil-000")).Should().BeFalse("no run was started by an unsigned StartRun");
        (await db.Events("ect-sweep-run-evil-000")).Should().BeEmpty("no entity of the attacker's run was ever assigned");
        node.Lines.Should().Contain(l => l.Contains("not signed with this cluster's token"), "the node says why it dropped the StartRun");
        node.Lines.Count(l => l.Contains("frame length exceeds")).Should().BeGreaterThanOrEqualTo(2, "both frames were judged too long (not merely malformed)");
        var again = Spec(dir, name + "b", runs: 1, tuningSteps: 20, stepMs: 20, control: false);
        (code, text) = await Ect("sweep", "submit", again, "--cluster", cluster, "--token-file", tokenFile, NoTls);
        code.Should().Be(0, text);
        text.Should().Contain("submitted, 1 runs");
        output.WriteLine($"done after {c.Elapsed.TotalSeconds:F1} s");
    }

    [Fact]
    public async Task Ctl_through_the_cluster_reaches_a_run_on_another_node_pauses_and_resumes_it_and_refuses_a_wrong_token()
    {
        await using var c = await LoopbackCluster.StartAsync(pg, output, "ect-cluster-ctl-", 2);
        var (dir, root, ports, nodes, tokenFile) = (c.Dir, c.Root, c.Ports, c.Nodes.ToList(), c.TokenFile);
        var name = "ctl-" + Guid.NewGuid().ToString("N")[..6];
        // Two runs of ~60 s of steps, one per node (one slot each); their trainers have a control endpoint.
        var spec = Spec(dir, name, runs: 2, tuningSteps: 600, stepMs: 100, control: true);
        var all = c.Addresses();
        var (code, text) = await Ect("sweep", "submit", spec, "--cluster", all, "--token-file", tokenFile);
        code.Should().Be(0, text);

        // A run that trains on node 1, asked through node 0.
        string? run = null;
        var wait = Stopwatch.StartNew();
        while (run is null && wait.Elapsed < TimeSpan.FromSeconds(90))
        {
            foreach (var l in nodes[1].Lines)
                if (System.Text.RegularExpressions.Regex.Match(l, @"run (\S+): attempt 1, ect train pid") is { Success: true } m
                    && File.Exists(Path.Combine(root, m.Groups[1].Value, "control.json")))
                    run = m.Groups[1].Value;
            if (run is null) await Task.Delay(200);
        }
        run.Should().NotBeNull("node 1 trains a run with a control endpoint");
        output.WriteLine($"{run} trains on node 1 after {c.Elapsed.TotalSeconds:F1} s");
        var viaNode0 = $"127.0.0.1:{ports[0]}";

        (code, text) = await Ect("ctl", "status", "--run", run!, "--cluster", viaNode0, "--token-file", tokenFile);
        code.Should().Be(0, text);
        text.Should().Contain(run!).And.Contain("step");
        (code, text) = await Ect("ctl", "pause", "--run", run!, "--cluster", viaNode0, "--token-file", tokenFile);
        code.Should().Be(0, text);
        var pausedAt = long.Parse(System.Text.RegularExpressions.Regex.Match(text, @"paused after step (\d+)").Groups[1].Value);
        await Task.Delay(TimeSpan.FromSeconds(2));
        (code, text) = await Ect("ctl", "status", "--run", run!, "--cluster", viaNode0, "--token-file", tokenFile);
        code.Should().Be(0, text);
        System.Text.RegularExpressions.Regex.Match(text, @"paused\s*\S*\s*yes").Success.Should().BeTrue(text);
        System.Text.RegularExpressions.Regex.Match(text, @"step\s*\S*\s*(\d+)").Groups[1].Value.Should().Be(pausedAt.ToString(), "a paused run takes no step");
        // The rest in process (the same request the CLI sends; each `ect` start costs seconds on a loaded machine).
        await using var client = c.Client(nodes.Take(1));
        var resumed = await client.Control(run!, new Ect.Actors.Control.ResumeRun("r1"), TimeSpan.FromSeconds(30));
        resumed.Accepted.Should().BeTrue(resumed.Message);
        var status = await client.Control(run!, new Ect.Actors.Control.GetStatus("s1"), TimeSpan.FromSeconds(30));
        status.Status!.Paused.Should().BeFalse("resumed through the cluster");

        var wrong = Path.Combine(dir, "wrong.token");
        File.WriteAllText(wrong, new string('1', 64));
        // The wrong token lies outside the run root: the cluster's certificate is given (else the client refuses first, exit 2).
        (code, text) = await Ect("ctl", "pause", "--run", run!, "--cluster", viaNode0, "--token-file", wrong, "--cluster-cert", ClusterCertificate.PathIn(root));
        code.Should().Be(1, text);
        text.Should().Contain(ClusterToken.Refused);
        var after = await client.Control(run!, new Ect.Actors.Control.GetStatus("s2"), TimeSpan.FromSeconds(30));
        after.Status!.Paused.Should().BeFalse("a pause with a wrong token did nothing");
        var missing = await client.Control("no-such-run", new Ect.Actors.Control.GetStatus("s3"), TimeSpan.FromSeconds(30));
        missing.Accepted.Should().BeFalse();
        missing.Message.Should().Contain("no run no-such-run has been started");

        (await client.Cancel(name)).Ok.Should().BeTrue();
        output.WriteLine($"done after {c.Elapsed.TotalSeconds:F1} s");
    }
}
