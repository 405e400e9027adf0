using Akka.Actor;
using Akka.TestKit.Xunit2;
using Ect.Actors.Cluster;
using Ect.Actors.Cluster.Wire;
using Ect.Actors.Persistence;
using Ect.Actors.Tests.RunTests;
using FluentAssertions;
using Xunit;
using RunInterrupted = Ect.Actors.Persistence.Events.RunInterrupted;
using RunFinished = Ect.Actors.Persistence.Events.RunFinished;

namespace Ect.Actors.Tests.Sweeps;

/// <summary>
/// The sweep director (a persistent singleton in a cluster; here alone, on the in-memory journal) and a run entity
/// with a real `ect train` child: runs are released only to free slots, a sweep resubmitted with another run
/// configuration is refused with nothing recorded, a cancelled sweep starts nothing more and its running run
/// checkpoints and stops.
/// </summary>
public sealed class SweepDirectorTests() : TestKit(ClusterHocon.Serialization.WithFallback(Akka.Configuration.ConfigurationFactory.ParseString(
    "akka.loglevel = WARNING")))
{
    private const string Token = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    private static SweepSubmitted Sweep(string name, params string[] extraSet)
    {
        var s = new SweepSubmitted { Name = name, SpecPath = $"/specs/{name}.conf", Metric = "fd-resnet18-1step" };
        for (int i = 0; i < 3; i++)
        {
            var r = new RunSpec { RunId = $"{name}-{i:D3}" };
            r.Sets.Add($"ect.tuning.double-ticks={i + 1}");
            r.Sets.AddRange(extraSet);
            s.Runs.Add(r);
        }
        return s;
    }

    /// <summary>Collects the StartRun run ids the region receives within <paramref name="seconds"/> (the director repeats them every few seconds).</summary>
    private static HashSet<string> Started(Akka.TestKit.TestProbe region, double seconds)
    {
        var ids = new HashSet<string>();
        region.ReceiveWhile(TimeSpan.FromSeconds(seconds), m => m switch { StartRun s => ids.Add(s.Run.RunId), _ => false }, 1000);
        return ids;
    }

    [Fact]
    public void Every_cluster_message_is_written_by_the_protobuf_serializer_with_its_manifest_and_read_back_equal()
    {
        var run = new RunSpec { RunId = "r-000", Configs = { "/a.conf" }, Sets = { "ect.tuning.steps=10", "ect.optimizer.lr=0.001" } };
        object[] messages =
        [
            new SubmitSweep { Sweep = new SweepSubmitted { Name = "s", SpecPath = "/s.conf", Metric = "m-1step", Runs = { run }, SubmittedUnixMs = 5 } },
            new RunAssigned { Sweep = "s", Run = run }, new RunAttemptStarted { Node = "n", Attempt = 2, Pid = 7, StartedUnixMs = 9 },
            new RunAttemptEnded { Attempt = 2, ExitCode = 1 }, new RunOutcome { Sweep = "s", RunId = "r-000", Outcome = "finished" },
            new StartRun { Sweep = "s", Run = run }, new CancelRun { RunId = "r-000" }, new NodeSlots { Node = "n", Slots = 2, Busy = 1 },
            new SweepStatusReply { Found = true, Runs = { new RunStatusRow { RunId = "r", Phase = "running", Attempts = 1 } } },
            RunControlRelay.Request(Token, "r-000", new Ect.Actors.Control.PauseRun("k1")),
            RunControlRelay.Reply(new Ect.Actors.Control.RunCommandReply("k1", true, "paused after step 3", null)),
        ];
        foreach (var m in messages)
        {
            var serializer = Sys.Serialization.FindSerializerFor(m);
            serializer.Should().BeOfType<ClusterSweepSerializer>(m.GetType().Name);
            var manifest = ((Akka.Serialization.SerializerWithStringManifest)serializer).Manifest(m);
            manifest.Should().Be(m.GetType().Name + "V1");
            Sys.Serialization.Deserialize(serializer.ToBinary(m), serializer.Identifier, manifest).Should().Be(m);
        }
        var corrupt = () => Sys.Serialization.Deserialize([0xff, 0xff, 0xff], ClusterSweepSerializer.SerializerId, "RunAssignedV1");
        corrupt.Should().Throw<System.Runtime.Serialization.SerializationException>().WithMessage("*corrupt RunAssignedV1*");
        var unknown = () => Sys.Serialization.Deserialize([], ClusterSweepSerializer.SerializerId, "System.Diagnostics.Process");
        unknown.Should().Throw<System.Runtime.Serialization.SerializationException>().WithMessage("*unknown manifest*");
    }

    [Fact]
    public void Runs_are_released_only_to_free_slots_and_the_next_one_when_a_run_ends()
    {
        var region = CreateTestProbe();
        var director = Sys.ActorOf(SweepDirector.Props(region.Ref, Token));
        director.Tell(new NodeSlots { Node = "node-a", Slots = 2 });
        director.Tell(new SubmitSweep { Sweep = Sweep("slots"), Token = Token });
        ExpectMsg<SweepReply>(TimeSpan.FromSeconds(10)).Ok.Should().BeTrue();
        Started(region, 2).Should().BeEquivalentTo(["slots-000", "slots-001"], "two slots: two runs");
        director.Tell(new RunEndedReport { Sweep = "slots", RunId = "slots-000", Outcome = "finished" });
        Started(region, 2).Should().Contain("slots-002").And.NotContain("slots-000", "an ended run is not started again");
        director.Tell(new SweepStatusQuery { Name = "slots", Token = Token });
        ExpectMsg<SweepStatusReply>().Runs.Select(r => r.Phase).Should().Equal("finished", "released", "released");
    }

    [Fact]
    public void A_sweep_resubmitted_with_another_run_configuration_is_refused_naming_the_run_and_nothing_is_recorded()
    {
        var region = CreateTestProbe();
        var director = Sys.ActorOf(SweepDirector.Props(region.Ref, Token));
        director.Tell(new SubmitSweep { Sweep = Sweep("twice"), Token = Token });
        ExpectMsg<SweepReply>(TimeSpan.FromSeconds(10)).Ok.Should().BeTrue();

        director.Tell(new SubmitSweep { Sweep = Sweep("twice", "ect.optimizer.lr=0.001"), Token = Token });
        var refusal = ExpectMsg<SweepReply>();
        refusal.Ok.Should().BeFalse();
        refusal.Message.Should().Contain("twice-000").And.Contain("another configuration").And.Contain("Nothing was submitted");

        // What is recorded is the first submission: a director recovered from the journal accepts it as the same sweep.
        Watch(director);
        director.Tell(PoisonPill.Instance);
        ExpectTerminated(director);
        var recovered = Sys.ActorOf(SweepDirector.Props(region.Ref, Token));
        recovered.Tell(new SubmitSweep { Sweep = Sweep("twice"), Token = Token });
        ExpectMsg<SweepReply>(TimeSpan.FromSeconds(10)).Message.Should().Contain("already submitted");
        recovered.Tell(new SweepStatusQuery { Name = "nope", Token = Token });
        ExpectMsg<SweepStatusReply>().Message.Should().Contain("no sweep named \"nope\"").And.Contain("twice");
    }

    [Fact]
    public void A_cancelled_sweep_stops_its_running_runs_and_starts_no_other()
    {
        var region = CreateTestProbe();
        var director = Sys.ActorOf(SweepDirector.Props(region.Ref, Token));
        director.Tell(new NodeSlots { Node = "node-a", Slots = 1 });
        director.Tell(new SubmitSweep { Sweep = Sweep("stop"), Token = Token });
        ExpectMsg<SweepReply>(TimeSpan.FromSeconds(10)).Ok.Should().BeTrue();
        Started(region, 1.5).Should().BeEquivalentTo(["stop-000"]);
        director.Tell(new CancelSweep { Name = "stop", Token = Token });
        ExpectMsg<SweepReply>().Message.Should().Contain("1 running run(s) asked to checkpoint and stop, 2 never started");
        region.FishForMessage(m => m is CancelRun { RunId: "stop-000" }, TimeSpan.FromSeconds(5));
        director.Tell(new RunEndedReport { Sweep = "stop", RunId = "stop-000", Outcome = "cancelled" });
        Started(region, 4).Should().BeEmpty("a cancelled sweep releases nothing, even with a free slot");
        director.Tell(new SweepStatusQuery { Name = "stop", Token = Token });
        var status = ExpectMsg<SweepStatusReply>();
        status.Cancelled.Should().BeTrue();
        status.Runs.Select(r => r.Phase).Should().Equal("cancelled", "cancelled", "cancelled");
    }

    [Fact]
    public void A_cancelled_run_entity_has_its_trainer_checkpoint_and_stop_and_reports_cancelled()
    {
        var root = Directory.CreateTempSubdirectory("ect-entity-").FullName;
        var director = CreateTestProbe();
        var slots = Sys.ActorOf(SlotGate.Props(1, "node-a", director.Ref));
        var node = new SweepRunEntity.NodeContext(root, ("dotnet", [EctProcess.EctDll]), 1, "node-a", slots, director.Ref, Token);
        var entity = Sys.ActorOf(SweepRunEntity.Props("cancel-000", node), "cancel-000");
        var run = new RunSpec { RunId = "cancel-000" };
        run.Sets.AddRange(["ect.run.engine=fake", "ect.pretrain.steps=10", "ect.tuning.steps=2000", "ect.checkpoint.every-steps=10",
            "ect.evaluation.every-steps=0", "ect.control.enabled=off", "ect.fake.step-ms=20"]);
        entity.Tell(new StartRun { Sweep = "cancel", Run = run });
        director.FishForMessage(m => m is RunRunningReport { Attempt: 1 }, TimeSpan.FromSeconds(30));
        var runDir = Path.Combine(root, "cancel-000");
        AwaitCondition(() => JournalPreflight.CheckpointFiles(runDir).Count > 0, TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(200));

        entity.Tell(new CancelRun { RunId = "cancel-000" });
        var ended = (RunEndedReport)director.FishForMessage(m => m is RunEndedReport, TimeSpan.FromSeconds(60));
        ended.Outcome.Should().Be("cancelled");
        var journal = RunJournal.Read(runDir);
        RunJournal.Events<RunInterrupted>(journal).Should().ContainSingle("SIGTERM: the trainer checkpointed and recorded its stop");
        RunJournal.Events<RunFinished>(journal).Should().BeEmpty("2,010 steps of 20 ms cannot have ended");
    }
}
