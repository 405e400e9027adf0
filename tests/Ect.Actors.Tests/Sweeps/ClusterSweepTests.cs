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
using RunFinished = Ect.Actors.Persistence.Events.RunFinished;

namespace Ect.Actors.Tests.Sweeps;

/// <summary>
/// Issue 19, points 3 and 5: a sweep on a cluster of three separate `ect node` processes on loopback, its journal on
/// the test PostgreSQL (a fresh database per test). One node is SIGKILLed while it trains a run: its trainer dies
/// with it, the run restarts on a surviving node from its last checkpoint, and every run of the sweep ends with the
/// weights and EMA digests of an uninterrupted run, each run trained by one process at a time. The killed node,
/// started again on its address, joins the cluster again.
/// </summary>
public sealed class ClusterSweepTests(PostgresFixture pg, ITestOutputHelper output) : IClassFixture<PostgresFixture>
{
    /// <summary>Four fake-engine runs of ~6 s of steps each (by default), a checkpoint every 10 steps.</summary>
    internal static string Spec(string dir, string name, int tuningSteps = 150)
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
                ect.control.enabled = off
                ect.tuning.kimg-per-tick = 0.1
                ect.fake { step-ms = 40, parameters = 4096 }
              }
              grid { "ect.tuning.double-ticks" = [1, 2, 3, 4] }
            }
            """);
        return path;
    }

    private static async Task<SweepStatusReply> WaitForAll(SweepClient client, string name, Func<string, bool> done, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        SweepStatusReply s;
        do
        {
            s = await client.Status(name);
            if (s.Found && s.Runs.All(r => done(r.Phase))) return s;
            await Task.Delay(500);
        } while (clock.Elapsed < timeout);
        throw new Xunit.Sdk.XunitException($"sweep {name} not done within {timeout.TotalSeconds} s: {string.Join(", ", s.Runs.Select(r => $"{r.RunId} {r.Phase} {r.Node}"))}");
    }

    [Fact]
    public async Task A_sweep_on_three_nodes_survives_a_SIGKILLed_node_and_every_run_ends_with_the_digests_of_an_uninterrupted_run()
    {
        // The split-brain resolver's shipped wait (20 s), as a user runs it. This test failed in CI three times
        // (2026-12-02, -03 twice; 1 of 4 local runs with Akka's debug log): the returned node and one survivor stopped
        // hearing each other and the resolver downed both. Not load, as first thought: their connections crossed (the
        // survivor reconnecting to the killed node's address as the node came back) and the survivor wrote on a
        // connection nobody read. Fixed by turning Akka's passive connections off (ClusterHocon.Node).
        await using var c = await LoopbackCluster.StartAsync(pg, output, "ect-cluster-", 3, "--down-after", "20");
        var (db, dir, root, nodes) = (c.Db, c.Dir, c.Root, c.Nodes.ToList());

        var specPath = Spec(dir, "kill-" + Guid.NewGuid().ToString("N")[..6]);
        var spec = SweepSpec.Load(specPath);
        var cluster = c.Addresses();
        var (code, text) = await LoopbackCluster.Ect("sweep", "submit", specPath, "--cluster", cluster, "--token-file", c.TokenFile);
        code.Should().Be(0, text);
        text.Should().Contain("submitted, 4 runs");

        // The victim: a node whose trainer has committed a checkpoint of its run (mid-run, not at its end).
        SweepNodeProcess? victim = null;
        string run = "";
        int trainerPid = 0;
        var wait = Stopwatch.StartNew();
        while (victim is null && wait.Elapsed < TimeSpan.FromSeconds(60))
        {
            foreach (var n in nodes)
                foreach (var l in n.Lines)
                    if (System.Text.RegularExpressions.Regex.Match(l, @"run (\S+): attempt 1, ect train pid (\d+)") is { Success: true } m
                        && JournalPreflight.CheckpointFiles(Path.Combine(root, m.Groups[1].Value)).Count > 0
                        && !Directory.Exists(Path.Combine(root, m.Groups[1].Value, "samples")))
                    { victim = n; run = m.Groups[1].Value; trainerPid = int.Parse(m.Groups[2].Value); break; }
            if (victim is null) await Task.Delay(100);
        }
        victim.Should().NotBeNull("a node trains a run and has checkpointed it");
        var trainer = Process.GetProcessById(trainerPid);
        trainer.HasExited.Should().BeFalse("the victim's trainer is alive when its node is killed");
        victim!.Process.Kill(); // SIGKILL
        await victim.Process.WaitForExitAsync();
        victim.Process.ExitCode.Should().Be(137, "the node died of the SIGKILL");
        output.WriteLine($"killed {victim.Name} (training {run}, trainer pid {trainerPid}) at {c.Elapsed.TotalSeconds:F1} s");
        var trainerGone = trainer.WaitForExitAsync();
        (await Task.WhenAny(trainerGone, Task.Delay(5000))).Should().BeSameAs(trainerGone,
            "the trainer of a killed node kills itself (it watches its parent): no orphan keeps training");
        RunJournal.Events<RunFinished>(RunJournal.Read(Path.Combine(root, run))).Should().BeEmpty("the kill landed before the run's end");

        var survivors = nodes.Where(n => n != victim).ToList();
        // The killed machine comes back on the same address while the sweep goes on: it joins again.
        var returned = c.Start(victim.Port);
        await using var client = c.Client(survivors);
        var status = await WaitForAll(client, spec.Name, p => p == "finished", TimeSpan.FromSeconds(120));
        output.WriteLine($"all {spec.Runs.Count} runs finished at {c.Elapsed.TotalSeconds:F1} s");
        status.Runs.Single(r => r.RunId == run).Attempts.Should().Be(2, "the killed run was started once more");
        await returned.WaitForLine(": up; 1 slot", TimeSpan.FromSeconds(60));
        // "up" is the node's own view; the others see it as a member a moment later (gossip): ask until they do.
        var again = await client.Status(spec.Name);
        for (var rejoin = Stopwatch.StartNew(); !again.Nodes.Any(n => n.Node.EndsWith($":{victim.Port}")) && rejoin.Elapsed < TimeSpan.FromSeconds(30);)
        {
            await Task.Delay(500);
            again = await client.Status(spec.Name);
        }
        again.Nodes.Select(n => n.Node).Should().Contain(n => n.EndsWith($":{victim.Port}"), "the node that came back is a member again");

        foreach (var r in spec.Runs)
        {
            var runDir = Path.Combine(root, r.Id);
            var got = DaemonHarness.Finished(runDir); // exactly one RunFinished
            var reference = Path.Combine(dir, "reference", r.Id);
            var settings = RunSettings.From(EctConfiguration.LoadFiles(spec.BaseFiles,
                spec.SetsOf(r).Concat(["ect.run.threads=1", "ect.fake.step-ms=0", "ect.display.mode=off"]).ToList()), checkData: false);
            (await DaemonHarness.RunDaemonAsync(reference, settings)).ExitCode.Should().Be(0);
            var expected = DaemonHarness.Finished(reference);
            got.WeightsSha256.Should().Be(expected.WeightsSha256, $"{r.Id}: weights as an uninterrupted run's");
            got.EmaSha256.Should().Be(expected.EmaSha256, $"{r.Id}: EMA weights as an uninterrupted run's");

            // One trainer at a time: every checkpoint committed once, in order (a second concurrent trainer of
            // the run would commit a step again or go back), and the entity's journal shows one attempt after
            // another, on the victim and then elsewhere for the killed run, once for every other run.
            DaemonHarness.CheckpointStepsOnce(runDir).Should().BeInAscendingOrder();
            var events = await db.Events("ect-sweep-run-" + r.Id);
            var attempts = events.Where(e => e.Manifest == "RunAttemptStartedV1").Select(e => RunAttemptStarted.Parser.ParseFrom(e.Payload)).ToList();
            attempts.Select(a => a.Attempt).Should().Equal(Enumerable.Range(1, attempts.Count));
            if (r.Id == run)
            {
                attempts.Should().HaveCount(2);
                attempts[0].Node.Should().EndWith($":{victim.Port}");
                // The second attempt ran on a survivor, or on the victim's address once it had come back.
            }
            else attempts.Should().ContainSingle($"{r.Id} was never interrupted");
            events.Last().Manifest.Should().Be("RunOutcomeV1");
            RunOutcome.Parser.ParseFrom(events.Last().Payload).Outcome.Should().Be("finished");
        }
        var director = await db.Events(SweepDirector.PersistenceIdValue);
        director.Where(e => e.Manifest == "RunOutcomeV1").Select(e => RunOutcome.Parser.ParseFrom(e.Payload).RunId)
            .Should().BeEquivalentTo(spec.Runs.Select(r => r.Id), "the director recorded each run's end once");

        // The CLI over the same cluster: status, results (table + JSON in the shared run root), cancel of an ended sweep.
        var alive = c.Addresses(survivors);
        (code, text) = await LoopbackCluster.Ect("sweep", "status", spec.Name, "--cluster", alive, "--token-file", c.TokenFile);
        code.Should().Be(0, text);
        text.Should().Contain($"sweep {spec.Name}: 4 of 4 runs ended").And.Contain(run).And.Contain("ETA").And.Contain("│ 160");
        (code, text) = await LoopbackCluster.Ect("sweep", "results", spec.Name, "--cluster", alive, "--token-file", c.TokenFile);
        code.Should().Be(0, text);
        File.Exists(Path.Combine(root, SweepResults.TableFile)).Should().BeTrue(text);
        (code, text) = await LoopbackCluster.Ect("sweep", "cancel", spec.Name, "--cluster", alive, "--token-file", c.TokenFile);
        code.Should().Be(0, text);
        text.Should().Contain("0 running run(s) asked to checkpoint and stop, 0 never started");
        (code, text) = await LoopbackCluster.Ect("sweep", "status", "no-such-sweep", "--cluster", alive, "--token-file", c.TokenFile);
        code.Should().Be(1, text);
        text.Should().Contain("no sweep named \"no-such-sweep\"").And.Contain(spec.Name);
        output.WriteLine($"test took {c.Elapsed.TotalSeconds:F1} s");
    }
}
