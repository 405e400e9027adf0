using Ect.Actors.Daemon;
using Ect.Actors.Engine;
using Ect.Actors.Persistence;
using Ect.Actors.Persistence.Events;
using Ect.Actors.Run;
using FluentAssertions;
using Xunit;
using static Ect.Actors.Tests.RunTests.DaemonHarness;

namespace Ect.Actors.Tests.RunTests;

/// <summary>
/// What supervision does with a trainer that throws: an engine that cannot be built ends the run with an error
/// (it used to restart the trainer without its StartTraining message and hang forever); an exception inside a
/// step rolls back to the last checkpoint like a NaN streak, and a failure that repeats ends the run.
/// </summary>
public class TrainerFailureTests
{
    private static async Task<RunOutcome> WithDeadline(Task<RunOutcome> run)
    {
        var finished = await Task.WhenAny(run, Task.Delay(TimeSpan.FromSeconds(60)));
        finished.Should().BeSameAs(run, "a trainer failure must end the daemon, not leave it waiting");
        return await run;
    }

    [Fact]
    public async Task An_engine_that_cannot_be_built_ends_the_run_with_the_cause_and_a_restart_resumes_it()
    {
        var dir = NewRunDir();
        EngineFactory broken = (_, _) => throw new InvalidDataException("teacher.safetensors: tensor 'enc.32x32_conv.weight' has shape [16,4,3,3], the network wants [16,1,3,3]");
        var outcome = await WithDeadline(RunDaemon.RunAsync(Settings(), dir, broken, CancellationToken.None, TextWriter.Null));

        outcome.ExitCode.Should().Be(1);
        outcome.Message.Should().Contain("enc.32x32_conv.weight").And.Contain("could not start");
        var interrupted = RunJournal.Events<RunInterrupted>(RunJournal.Read(dir)).Should().ContainSingle().Subject;
        interrupted.Reason.Should().Contain("InvalidDataException");
        File.Exists(Path.Combine(dir, RunDaemon.LockFile)).Should().BeFalse("the lock is released on the way out");

        // Fixed (here: the working factory), the same run directory runs to the end with the bits of a clean run.
        var clean = NewRunDir();
        await RunDaemonAsync(clean, Settings());
        (await RunDaemonAsync(dir, Settings())).ExitCode.Should().Be(0);
        Finished(dir).WeightsSha256.Should().Be(Finished(clean).WeightsSha256);
    }

    [Fact]
    public async Task An_exception_inside_one_step_rolls_back_and_the_run_recomputes_the_same_bits()
    {
        var clean = NewRunDir();
        await RunDaemonAsync(clean, Settings());
        int thrown = 0;
        EngineFactory once = (s, d) =>
        {
            var (e, src) = Engines.Fake(s, d);
            return (new ThrowingStep(e, step => step == 17 && Interlocked.Exchange(ref thrown, 1) == 0), src);
        };
        var dir = NewRunDir();
        (await WithDeadline(RunDaemon.RunAsync(Settings(), dir, once, CancellationToken.None, TextWriter.Null))).ExitCode.Should().Be(0);

        var rb = RunJournal.Events<RolledBack>(RunJournal.Read(dir)).Should().ContainSingle().Subject;
        rb.FromStep.Should().Be(16, "step 17 failed, so the trainer stood at step 16");
        rb.ToStep.Should().BeOneOf(0, 10);
        rb.Reason.Should().Contain("step 17 failed").And.Contain("InvalidOperationException").And.Contain("simulated libtorch error");
        Finished(dir).WeightsSha256.Should().Be(Finished(clean).WeightsSha256);
        Finished(dir).EmaSha256.Should().Be(Finished(clean).EmaSha256);
        CheckpointStepsOnce(dir);
    }

    [Fact]
    public async Task A_step_that_always_throws_gives_up_after_max_rollbacks_with_exit_code_1()
    {
        EngineFactory always = (s, d) =>
        {
            var (e, src) = Engines.Fake(s, d);
            return (new ThrowingStep(e, step => step == 12), src);
        };
        var dir = NewRunDir();
        var outcome = await WithDeadline(RunDaemon.RunAsync(Settings("training.max-rollbacks=2"), dir, always, CancellationToken.None, TextWriter.Null));

        outcome.ExitCode.Should().Be(1);
        outcome.Message.Should().Contain("gave up after 2 rollbacks").And.Contain("simulated libtorch error");
        RunJournal.Events<RolledBack>(RunJournal.Read(dir)).Should().HaveCount(2);
        RunJournal.Events<RunInterrupted>(RunJournal.Read(dir)).Should().ContainSingle().Which.Reason.Should().Contain("gave up");
    }

    [Fact]
    public async Task A_trainer_that_throws_outside_a_step_is_stopped_by_supervision_and_the_run_ends_with_the_cause()
    {
        EngineFactory noCapture = (s, d) =>
        {
            var (e, src) = Engines.Fake(s, d);
            return (new ThrowingStep(e, _ => false, captureFails: true), src);
        };
        var dir = NewRunDir();
        var outcome = await WithDeadline(RunDaemon.RunAsync(Settings(), dir, noCapture, CancellationToken.None, TextWriter.Null));

        outcome.ExitCode.Should().Be(1);
        outcome.Message.Should().Contain("the trainer failed").And.Contain("IOException").And.Contain("cannot capture");
        RunJournal.Events<CheckpointCommitted>(RunJournal.Read(dir)).Should().BeEmpty();
        RunJournal.Events<RunInterrupted>(RunJournal.Read(dir)).Should().ContainSingle().Which.Reason.Should().Contain("cannot capture");
    }

    /// <summary>The fake engine, except that Step throws (as libtorch would) when <c>fail(step)</c> says so.</summary>
    private sealed class ThrowingStep(ITrainingEngine inner, Func<long, bool> fail, bool captureFails = false) : ITrainingEngine
    {
        private long _step; // steps taken by this engine instance, counted from the checkpoint it loaded
        public void SetPhase(string phase) => inner.SetPhase(phase);
        public void SetStage(int stage) => inner.SetStage(stage);
        public void SetLearningRate(double lr) => inner.SetLearningRate(lr);
        public EngineStepResult Step(Batch batch)
        {
            if (fail(++_step)) throw new InvalidOperationException($"simulated libtorch error at step {_step}");
            return inner.Step(batch);
        }
        public ICheckpointImage Capture(IReadOnlyDictionary<string, string> metadata) =>
            captureFails ? throw new IOException("simulated: cannot capture the optimizer state") : inner.Capture(metadata);
        public IReadOnlyDictionary<string, string> LoadCheckpoint(string path)
        {
            var meta = inner.LoadCheckpoint(path);
            _step = long.Parse(meta["step"], System.Globalization.CultureInfo.InvariantCulture);
            return meta;
        }
        public IEvaluationModel CaptureEma() => inner.CaptureEma();
        public string WeightsDigest() => inner.WeightsDigest();
        public string EmaDigest() => inner.EmaDigest();
        public void Dispose() => inner.Dispose();
    }
}
