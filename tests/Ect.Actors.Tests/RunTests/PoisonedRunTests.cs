using System.Globalization;
using Akka.Actor;
using Ect.Actors.Control;
using Ect.Actors.Engine;
using Ect.Actors.Persistence;
using Ect.Actors.Persistence.Events;
using Ect.Actors.Run;
using FluentAssertions;
using Xunit;
using static Ect.Actors.Tests.RunTests.DaemonHarness;

namespace Ect.Actors.Tests.RunTests;

/// <summary>
/// Issue 12, point 4: an accepted live change that ruins the run (here a learning rate the engine cannot take; in
/// the report, 1e308) made every restart replay it and fail. `ect train --revert-command ID` is the way out.
/// </summary>
public class PoisonedRunTests
{
    /// <summary>The fake engine, whose loss is NaN while the learning rate is 0.05 or more (inside the range: a bad value that gets past it).</summary>
    private sealed class LrSensitive(ITrainingEngine inner) : ITrainingEngine
    {
        private double _lr;
        public void SetPhase(string phase) => inner.SetPhase(phase);
        public void SetStage(int stage) => inner.SetStage(stage);
        public void SetLearningRate(double lr) { _lr = lr; inner.SetLearningRate(lr); }
        public EngineStepResult Step(Batch batch) { var r = inner.Step(batch); return _lr >= 0.05 ? r with { Loss = double.NaN } : r; }
        public ICheckpointImage Capture(IReadOnlyDictionary<string, string> m) => inner.Capture(m);
        public IReadOnlyDictionary<string, string> LoadCheckpoint(string path) => inner.LoadCheckpoint(path);
        public IEvaluationModel CaptureEma() => inner.CaptureEma();
        public string WeightsDigest() => inner.WeightsDigest();
        public string EmaDigest() => inner.EmaDigest();
        public void Dispose() => inner.Dispose();
    }

    private static readonly EngineFactory Sensitive = (s, dir) => { var (e, src) = Engines.Fake(s, dir); return (new LrSensitive(e), src); };

    [Fact]
    public async Task A_run_poisoned_by_a_live_change_fails_on_every_restart_until_the_change_is_reverted()
    {
        var dir = NewRunDir();
        var s = Settings("fake.step-ms=10", "pretrain.steps=20", "tuning.steps=400");
        var replies = new List<RunCommandReply>();
        var poisoned = await RunDaemonAsync(dir, s, Sensitive, onStarted: (sys, coord) => _ = Task.Run(async () =>
        {
            async Task Ask(RunCommand c) { var r = await coord.Ask<RunCommandReply>(c, TimeSpan.FromSeconds(30)); lock (replies) replies.Add(r); }
            for (int i = 0; i < 3000; i++)
            {
                var st = await coord.Ask<RunCommandReply>(new GetStatus("s"), TimeSpan.FromSeconds(30));
                if (st.Status!.Phase == Phases.Tuning && st.Status.Step > 25) break;
                await Task.Delay(20);
            }
            await Ask(new SetStage("huge-stage", int.MaxValue));
            await Ask(new SetConfigValue("too-high", "tuning.lr", "1e308"));
            await Ask(new SetConfigValue("poison", "tuning.lr", "0.09"));
        }));
        replies.Should().HaveCount(3);
        replies[0].Accepted.Should().BeFalse();
        replies[0].Message.Should().Contain("outside its range 0 to 1000");
        replies[1].Accepted.Should().BeFalse();
        replies[1].Message.Should().Contain("ect.tuning.lr").And.Contain("1e-8 to 0.1");
        replies[2].Accepted.Should().BeTrue(replies[2].Message);

        poisoned.ExitCode.Should().Be(1, poisoned.Message);
        poisoned.Message.Should().Contain("gave up").And.Contain("ect.tuning.lr = 0.09").And.Contain("(command poison)")
            .And.Contain("--revert-command ID");
        var stepsBefore = RunJournal.Events<CheckpointCommitted>(RunJournal.Read(dir)).Max(c => c.Step);

        // A plain restart replays the change and fails the same way.
        var again = await RunDaemonAsync(dir, s, Sensitive);
        again.ExitCode.Should().Be(1, again.Message);
        again.Message.Should().Contain("(command poison)");

        // An id the journal does not hold is refused, naming the ones it does.
        var unknown = await RunDaemonAsync(dir, Settings("fake.step-ms=10", "pretrain.steps=20", "tuning.steps=400", "run.revert-commands=[nope]"), Sensitive);
        unknown.ExitCode.Should().Be(2);
        unknown.Message.Should().Contain("--revert-command nope").And.Contain("(command poison)");

        // The way out: the key takes back its value from the resume step on, journaled; the run trains on and finishes.
        var reverted = await RunDaemonAsync(dir, Settings("fake.step-ms=1", "pretrain.steps=20", "tuning.steps=400", "run.revert-commands=[poison]"), Sensitive);
        reverted.ExitCode.Should().Be(0, reverted.Message);
        var journal = RunJournal.Read(dir);
        var revert = RunJournal.Events<ConfigChanged>(journal).Should().ContainSingle(c => c.IdempotencyKey == "revert:poison").Subject;
        revert.Key.Should().Be("ect.tuning.lr");
        double.Parse(revert.Value, CultureInfo.InvariantCulture).Should().Be(1e-4, "the value before the poisoned change");
        Finished(dir).Step.Should().Be(420);
        stepsBefore.Should().BeLessThan(420);
        var lastLine = File.ReadLines(Path.Combine(dir, "stats.jsonl")).Last();
        lastLine.Should().Contain("\"lr\":0.0001");

        // The revert is applied once: the same flag again on the finished run journals nothing more.
        await RunDaemonAsync(dir, Settings("fake.step-ms=1", "pretrain.steps=20", "tuning.steps=400", "run.revert-commands=[poison]"), Sensitive);
        RunJournal.Events<ConfigChanged>(RunJournal.Read(dir)).Count(c => c.IdempotencyKey == "revert:poison").Should().Be(1);
    }

    [Fact]
    public async Task A_journal_with_a_change_outside_its_range_is_refused_on_resume_until_reverted()
    {
        // What a run poisoned before the ranges existed holds: `set tuning.lr=1e308`, journaled at step 5.
        var dir = NewRunDir();
        var s = Settings("run.max-steps=10");
        (await RunDaemonAsync(dir, s)).Step.Should().Be(10);
        using (var sys = ActorSystem.Create("old", Ect.Actors.Daemon.RunDaemon.SystemConfig(s.Config, dir)))
        {
            var done = new TaskCompletionSource();
            sys.ActorOf(Props.Create(() => new Appender(new ConfigChanged { Key = "ect.tuning.lr", Value = "1e308", Step = 5, IdempotencyKey = "old-poison" }, done,
                Ect.Actors.Run.RunIdentity.PersistenceIdOf(dir))));
            await done.Task.WaitAsync(TimeSpan.FromSeconds(60));
            await sys.Terminate();
        }

        var refused = await RunDaemonAsync(dir, Settings());
        refused.ExitCode.Should().Be(2);
        refused.Message.Should().Contain("ect.tuning.lr = 1e308: outside its range 1e-8 to 0.1").And.Contain("--revert-command")
            .And.Contain("(command old-poison)");

        var resumed = await RunDaemonAsync(dir, Settings("run.revert-commands=[old-poison]"));
        resumed.ExitCode.Should().Be(0, resumed.Message);
        Finished(dir).Step.Should().Be(60);
    }

    private sealed class Appender : Akka.Persistence.ReceivePersistentActor
    {
        public override string PersistenceId { get; }
        /// <param name="persistenceId">The run's own journal stream (run.json's persistence id).</param>
        public Appender(ConfigChanged e, TaskCompletionSource done, string persistenceId)
        {
            PersistenceId = persistenceId;
            Recover<object>(_ => { });
            Command<string>(_ => Persist(e, _ => done.TrySetResult()));
        }
        protected override void PreStart() { base.PreStart(); Self.Tell("go"); }
    }
}
