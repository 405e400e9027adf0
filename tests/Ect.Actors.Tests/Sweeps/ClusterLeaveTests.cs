using System.Diagnostics;
using Ect.Actors.Cluster;
using Ect.Actors.Cluster.Wire;
using Ect.Actors.Configuration;
using Ect.Actors.Persistence;
using Ect.Actors.Sweeps;
using Ect.Actors.Tests.Control;
using Ect.Actors.Tests.Postgres;
using Ect.Actors.Tests.RunTests;
using FluentAssertions;
using Xunit;
using Xunit.Abstractions;
using RunInterrupted = Ect.Actors.Persistence.Events.RunInterrupted;

namespace Ect.Actors.Tests.Sweeps;

/// <summary>
/// Issue 19: a node that gets SIGTERM while it trains a run leaves the cluster gracefully: its trainer checkpoints and
/// stops (RunInterrupted journaled, the checkpoint committed), the node exits 0, and the run continues on the other node
/// from that checkpoint and ends with the digests of an uninterrupted run.
/// </summary>
public sealed class ClusterLeaveTests(PostgresFixture pg, ITestOutputHelper output) : IClassFixture<PostgresFixture>
{
    [Fact]
    public async Task A_node_given_SIGTERM_leaves_its_trainer_checkpoints_and_stops_and_the_run_ends_elsewhere_with_uninterrupted_digests()
    {
        await using var c = await LoopbackCluster.StartAsync(pg, output, "ect-cluster-leave-", 2);
        var (db, dir, root, nodes) = (c.Db, c.Dir, c.Root, c.Nodes.ToList());
        var name = "leave-" + Guid.NewGuid().ToString("N")[..6];
        var specPath = Path.Combine(dir, name + ".conf");
        File.WriteAllText(specPath, $$"""
            sweep {
              name = "{{name}}"
              metric = "fd-resnet18-1step"
              set {
                ect.run.engine = fake
                ect.pretrain.steps = 10
                ect.tuning.steps = 300
                ect.checkpoint.every-steps = 10
                ect.evaluation.every-steps = 0
                ect.control.enabled = off
                ect.tuning.kimg-per-tick = 0.1
                ect.fake { step-ms = 40, parameters = 4096 }
              }
              list = [ { "ect.tuning.double-ticks" = 2 } ]
            }
            """);
        var spec = SweepSpec.Load(specPath);
        var run = spec.Runs.Single().Id;
        var runDir = Path.Combine(root, run);
        await using var client = c.Client();
        (await client.Submit(spec)).Ok.Should().BeTrue();

        // The victim: the node whose trainer has committed a checkpoint of the run.
        SweepNodeProcess? victim = null;
        int trainerPid = 0;
        for (var wait = Stopwatch.StartNew(); victim is null && wait.Elapsed < TimeSpan.FromSeconds(90);)
        {
            foreach (var n in nodes)
                if (n.Lines.Select(l => System.Text.RegularExpressions.Regex.Match(l, @"attempt 1, ect train pid (\d+)")).FirstOrDefault(m => m.Success) is { } m
                    && JournalPreflight.CheckpointFiles(runDir).Count > 0)
                { victim = n; trainerPid = int.Parse(m.Groups[1].Value); }
            if (victim is null) await Task.Delay(100);
        }
        victim.Should().NotBeNull("a node trains the run and has checkpointed it");
        var trainer = Process.GetProcessById(trainerPid);
        using (var kill = Process.Start("kill", ["-TERM", victim!.Process.Id.ToString()])) await kill.WaitForExitAsync();
        output.WriteLine($"SIGTERM to {victim.Name} at {c.Elapsed.TotalSeconds:F1} s");
        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(90)))
            try { await victim.Process.WaitForExitAsync(cts.Token); } catch (OperationCanceledException) { }
        victim.Process.HasExited.Should().BeTrue("the node left within 90 s");
        victim.Process.ExitCode.Should().Be(0, "a node that left the cluster exits 0");
        trainer.HasExited.Should().BeTrue("the node waited for its trainer");
        output.WriteLine($"{victim.Name} exited at {c.Elapsed.TotalSeconds:F1} s");
        victim.Lines.Should().Contain(l => l.Contains("leaving the cluster"));
        var interrupted = RunJournal.Events<RunInterrupted>(RunJournal.Read(runDir));
        interrupted.Should().ContainSingle("the trainer journaled its stop");
        var checkpointsAtStop = DaemonHarness.CheckpointStepsOnce(runDir);
        checkpointsAtStop.Should().NotBeEmpty();

        var survivor = nodes.Single(n => n != victim);
        for (var wait = Stopwatch.StartNew(); wait.Elapsed < TimeSpan.FromSeconds(120); await Task.Delay(500))
        {
            var s = await client.Status(name);
            if (s.Found && s.Runs.Single().Phase == "finished") break;
        }
        output.WriteLine($"run finished at {c.Elapsed.TotalSeconds:F1} s");
        var got = DaemonHarness.Finished(runDir);
        var settings = RunSettings.From(EctConfiguration.LoadFiles(spec.BaseFiles,
            spec.SetsOf(spec.Runs.Single()).Concat(["ect.run.threads=1", "ect.fake.step-ms=0", "ect.display.mode=off"]).ToList()), checkData: false);
        var reference = Path.Combine(dir, "reference");
        (await DaemonHarness.RunDaemonAsync(reference, settings)).ExitCode.Should().Be(0);
        var expected = DaemonHarness.Finished(reference);
        got.WeightsSha256.Should().Be(expected.WeightsSha256, "weights as an uninterrupted run's");
        got.EmaSha256.Should().Be(expected.EmaSha256, "EMA weights as an uninterrupted run's");
        DaemonHarness.CheckpointStepsOnce(runDir).Should().BeInAscendingOrder().And.Contain(checkpointsAtStop);

        var attempts = (await db.Events("ect-sweep-run-" + run)).Where(e => e.Manifest == "RunAttemptStartedV1")
            .Select(e => RunAttemptStarted.Parser.ParseFrom(e.Payload)).ToList();
        attempts.Select(a => a.Attempt).Should().Equal(1, 2);
        attempts[0].Node.Should().EndWith($":{victim.Port}");
        attempts[1].Node.Should().EndWith($":{survivor.Port}", "the run continued on the node that stayed");
        output.WriteLine($"done after {c.Elapsed.TotalSeconds:F1} s");
    }
}
