using Akka.Actor;
using Akka.TestKit.Xunit2;
using Ect.Actors.Configuration;
using Ect.Actors.Daemon;
using Ect.Actors.Engine;
using Ect.Actors.Persistence;
using Ect.Actors.Persistence.Events;
using Ect.Actors.Run;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.RunTests;

/// <summary>An EMA copy whose sampling always throws (a broken evaluator, as far as the run can tell).</summary>
internal sealed class ThrowingEvaluationModel : IEvaluationModel
{
    private static int _disposed;
    public static int Disposed => Volatile.Read(ref _disposed);
    public int Channels => 3;
    public int Resolution => 8;
    public float[] Generate(int count, int samplingSteps, int seed, double tMax, double midT, int firstImage = 0, Ect.Actors.Evaluation.ClassLabels? classes = null) =>
        throw new InvalidOperationException("this evaluator always fails");
    public void Dispose() => Interlocked.Increment(ref _disposed);
}

/// <summary>The fake engine, but every EMA copy it hands the evaluators throws when sampled.</summary>
internal sealed class ThrowingEmaEngine(ITrainingEngine inner) : ITrainingEngine
{
    public void SetPhase(string phase) => inner.SetPhase(phase);
    public void SetStage(int stage) => inner.SetStage(stage);
    public void SetLearningRate(double lr) => inner.SetLearningRate(lr);
    public EngineStepResult Step(Batch batch) => inner.Step(batch);
    public ICheckpointImage Capture(IReadOnlyDictionary<string, string> metadata) => inner.Capture(metadata);
    public IReadOnlyDictionary<string, string> LoadCheckpoint(string path) => inner.LoadCheckpoint(path);
    public IEvaluationModel CaptureEma() => new ThrowingEvaluationModel();
    public string WeightsDigest() => inner.WeightsDigest();
    public string EmaDigest() => inner.EmaDigest();
    public void Dispose() => inner.Dispose();
}

/// <summary>
/// An evaluator that exhausts its restarts (EvaluationSupervisor: more than 20 failures in a minute) is stopped; the
/// evaluations sent to it afterwards must still be answered, or the final evaluation countdown waits for ever.
/// </summary>
public class EvaluatorExhaustionTests() : TestKit("ect.evaluation-dispatcher { type = PinnedDispatcher }")
{
    private static EvaluatorSettings Grid => new("sample-grid", [1], 4, 1, 80, 0.821);

    [Fact]
    public void Every_request_to_an_evaluator_that_always_throws_is_answered_even_after_it_was_stopped()
    {
        var dir = Directory.CreateTempSubdirectory("ect-eval-").FullName;
        var coordinator = CreateTestProbe();
        var supervisor = Sys.ActorOf(EvaluationSupervisor.Props([Grid], dir, "", coordinator.Ref));
        var disposedBefore = ThrowingEvaluationModel.Disposed;
        const int requests = 30; // > 21: the evaluator is stopped after its 21st failure within the minute
        for (int step = 1; step <= requests; step++)
            supervisor.Tell(new EvaluationRequest(step, [new ThrowingEvaluationModel()], Final: step == requests));

        var answers = Enumerable.Range(0, requests).Select(_ => coordinator.ExpectMsg<EvaluationFailed>(TimeSpan.FromSeconds(30))).ToList();
        answers.Select(a => a.Step).Should().BeEquivalentTo(Enumerable.Range(1, requests).Select(s => (long)s));
        answers.Should().ContainSingle(a => a.Final).Which.Step.Should().Be(requests);
        answers.Should().Contain(a => a.Reason == EvaluationSupervisor.StoppedReason,
            "the evaluator exhausted its restarts, and the requests after that were answered by the supervisor");
        AwaitCondition(() => ThrowingEvaluationModel.Disposed - disposedBefore >= requests, TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task A_run_whose_evaluator_always_throws_still_finishes_and_journals_it()
    {
        var dir = DaemonHarness.NewRunDir();
        // An evaluation after every step: the evaluator fails ~60 times in seconds, far past its 20 restarts.
        var s = DaemonHarness.Settings("evaluation.every-steps=1");
        s.Evaluation.Evaluators.Should().NotBeEmpty("the default configuration has an evaluator");
        EngineFactory throwing = (settings, runDir) =>
        {
            var (engine, source) = Engines.Fake(settings, runDir);
            return (new ThrowingEmaEngine(engine), source);
        };
        var outcome = await RunDaemon.RunAsync(s, dir, throwing, CancellationToken.None, TextWriter.Null, null, false)
            .WaitAsync(TimeSpan.FromMinutes(2));
        outcome.ExitCode.Should().Be(0, outcome.Message);
        DaemonHarness.Finished(dir).Step.Should().Be(60);
        var events = RunJournal.Read(dir);
        RunJournal.Events<PhaseChanged>(events).Should().Contain(p => p.Phase == Phases.FinalEvaluation && p.Step == 60);
        RunJournal.Events<EvaluationRecorded>(events).Should().BeEmpty("no evaluation succeeded");
    }
}
