using System.Runtime.CompilerServices;
using System.Text.Json;
using Akka.Actor;
using Ect.Actors.Cli;
using Ect.Actors.Control;
using Ect.Actors.Engine;
using Ect.Actors.Persistence;
using Ect.Actors.Persistence.Events;
using FluentAssertions;
using Xunit;
using static Ect.Actors.Tests.RunTests.DaemonHarness;

namespace Ect.Actors.Tests.Runs;

/// <summary>
/// `ect history` on a real fake-engine run that was paused, changed, rolled back, stopped, restarted and finished:
/// every journal event appears once, with its step, time and what happened.
/// </summary>
[Collection("Console")]
public sealed class HistoryVerbTests
{
    /// <summary>The fake engine with a NaN streak from step 8 in its first incarnation only (its own flag, not the process's).</summary>
    private static Run.EngineFactory NanOnce()
    {
        var fired = new StrongBox<bool>();
        return (s, dir) => (new FakeTrainingEngine(s.Seed, 1024, s.EmaBeta, stepMs: 15, nanAtStep: 8, nanFired: fired),
            new FakeBatchSource(s.Seed, s.BatchSize, width: 64));
    }

    private static async Task<RunCommandReply> Until(IActorRef run, RunCommand cmd)
    {
        for (var i = 0; ; i++)
        {
            var reply = await run.Ask<RunCommandReply>(cmd, TimeSpan.FromSeconds(10));
            if (reply.Accepted || i > 200) return reply; // refused while the trainer starts (or rolls back): not journaled, retried
            await Task.Delay(25);
        }
    }

    [Fact]
    public async Task History_lists_every_event_of_a_paused_changed_rolled_back_restarted_run_with_step_time_and_content()
    {
        var dir = NewRunDir();
        Task? commands = null;
        var first = await RunDaemonAsync(dir, Settings("run.max-steps=45", "training.nan-streak-limit=2"), NanOnce(), onStarted: (_, run) =>
            commands = Task.Run(async () =>
            {
                (await Until(run, new PauseRun("pause-1"))).Accepted.Should().BeTrue();
                (await Until(run, new SetConfigValue("lr-1", "ect.tuning.lr", "0.0002"))).Accepted.Should().BeTrue();
                (await Until(run, new ResumeRun("resume-1"))).Accepted.Should().BeTrue();
            }));
        await commands!;
        first.Step.Should().Be(45);
        (await RunDaemonAsync(dir, Settings())).ExitCode.Should().Be(0); // restart without the cap: to the end (60)

        var journal = RunJournal.Read(dir);
        var (code, output, err) = CliHarness.Run("history", dir);
        code.Should().Be(0, err);
        var lines = output.TrimEnd('\n').Split('\n');
        lines.Should().HaveCount(journal.Count, "one line per journaled event");
        for (var i = 0; i < journal.Count; i++) lines[i].TrimStart().Should().StartWith($"{journal[i].SequenceNr} ");
        lines.Should().OnlyContain(l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^\s*\d+  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}  step "),
            "each line has the sequence number and the time the journal stored it");

        var checkpoint = RunJournal.Events<CheckpointCommitted>(journal).First();
        output.Should().Contain("started ").And.Contain("ect.run.engine = \"fake\"", "the configuration's differences from the defaults")
            .And.Contain("phase pretrain").And.Contain("phase tuning").And.Contain("(schedule)")
            .And.Contain($"{checkpoint.Path} sha256 {checkpoint.Sha256}")
            .And.Contain("paused by ect ctl (command pause-1)").And.Contain("ect.tuning.lr = 0.0002, by ect ctl (command lr-1)")
            .And.Contain("resumed by ect ctl (command resume-1)")
            .And.Contain("rolled back from step").And.Contain("non-finite")
            .And.Contain("stopped: step cap 45 reached").And.Contain("ect.run.max-steps = 0, by ect train (restart)")
            .And.Contain("finished, 1.92 kimg; weights sha256");
        RunJournal.Events<EvaluationRecorded>(journal).Should().NotBeEmpty();
        output.Should().Contain($"evaluation           {RunJournal.Events<EvaluationRecorded>(journal).First().Evaluator}");

        // --json: one object per event, the event's own fields under data.
        var (jcode, jout, jerr) = CliHarness.Run("history", dir, "--json");
        jcode.Should().Be(0, jerr);
        var objects = jout.TrimEnd('\n').Split('\n').Select(l => JsonDocument.Parse(l).RootElement).ToList();
        objects.Select(o => o.GetProperty("seq").GetInt64()).Should().Equal(journal.Select(e => e.SequenceNr));
        objects.Select(o => o.GetProperty("event").GetString()).Should().Contain(["RunStarted", "PhaseChanged", "StageAdvanced",
            "CheckpointCommitted", "EvaluationRecorded", "ConfigChanged", "RunPaused", "RunResumed", "RolledBack", "RunInterrupted", "RunFinished"]);
        var ck = objects.First(o => o.GetProperty("event").GetString() == "CheckpointCommitted");
        ck.GetProperty("data").GetProperty("sha256").GetString().Should().Be(checkpoint.Sha256);
        ck.GetProperty("step").GetInt64().Should().Be(checkpoint.Step);
        ck.GetProperty("time").GetString().Should().NotBeNullOrEmpty();
    }

    [Fact]
    public async Task Follow_prints_the_events_of_a_running_run_as_they_come_and_ends_when_its_daemon_exits()
    {
        var dir = NewRunDir();
        var output = new StringWriter();
        var follow = Task.Run(() => HistoryVerb.Run(dir, follow: true, json: false, output)); // before the run exists
        await Task.Delay(300);
        var outcome = await RunDaemonAsync(dir, Settings("fake.step-ms=10"));
        outcome.ExitCode.Should().Be(0);
        (await follow.WaitAsync(TimeSpan.FromSeconds(20))).Should().Be(0);
        var lines = output.ToString().TrimEnd('\n').Split('\n');
        lines.Should().HaveCount(RunJournal.Read(dir).Count);
        lines[^1].Should().Contain("finished");
    }

    [Fact]
    public void A_directory_without_a_journal_is_an_error_naming_it()
    {
        var dir = NewRunDir();
        var (code, _, err) = CliHarness.Run("history", dir);
        code.Should().Be(1);
        err.Should().Contain(Path.Combine(dir, "journal.db"));
    }
}
