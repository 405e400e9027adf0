using Ect.Actors.Output;
using Ect.Actors.Persistence;
using Ect.Actors.Persistence.Events;
using Ect.Actors.Tests.Eval;
using FluentAssertions;
using Xunit;
using static Ect.Actors.Tests.RunTests.DaemonHarness;

namespace Ect.Actors.Tests.Metric;

/// <summary>The fd-resnet18 evaluator inside a whole run on the fake engine (8x8 grey images).</summary>
public sealed class MetricDaemonTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ect-metric-run-").FullName;
    private string DataPath => Path.Combine(_dir, "train-images-idx3-ubyte");

    private string[] WithMetric(string dataPath) =>
    [
        $"data.path={dataPath}",
        $"evaluation.evaluators=[{{type = fd-resnet18, sampling-steps = [1, 2], count = 8, batch = 4, reference-count = 20, cache-dir = \"{Path.Combine(_dir, "stats")}\"}}]",
    ];

    [Fact]
    [Trait("Category", "Slow")] // about 30 s on the shared 2-core machine: 6 FD-ResNet18 values plus the reference
    public async Task A_fake_run_journals_fd_resnet18_values_at_each_evaluation_and_writes_metrics_jsonl_and_fd_png()
    {
        TinyCheckpointFixture.WriteIdx(DataPath, 24);
        var run = NewRunDir();
        (await RunDaemonAsync(run, Settings(WithMetric(DataPath)))).ExitCode.Should().Be(0);

        var evaluations = RunJournal.Events<EvaluationRecorded>(RunJournal.Read(run)).ToList();
        evaluations.Select(e => (e.Evaluator, e.Step)).Should().Equal(("fd-resnet18", 20L), ("fd-resnet18", 40L), ("fd-resnet18", 60L));
        foreach (var e in evaluations)
        {
            e.Metrics.Keys.Should().BeEquivalentTo("fd-resnet18-1step", "fd-resnet18-2step");
            e.Metrics.Values.Should().OnlyContain(v => double.IsFinite(v) && v > 0);
            e.Files.Should().Equal("metrics.jsonl", "fd.png");
        }
        var rows = MetricsFile.Read(run);
        rows.Should().HaveCount(6);
        rows.Should().OnlyContain(r => r.Value == evaluations.Single(e => e.Step == r.Step).Metrics[r.Metric]);
        rows.Single(r => r.Step == 20 && r.SamplingSteps == 1).Kimg.Should().BeApproximately(20 * 32 / 1000.0, 1e-12);
        File.Exists(Path.Combine(run, "fd.png")).Should().BeTrue();
    }

    [Fact]
    public async Task A_missing_dataset_fails_every_evaluation_but_training_finishes_with_the_same_weights()
    {
        var clean = NewRunDir();
        await RunDaemonAsync(clean, Settings());
        var run = NewRunDir();
        (await RunDaemonAsync(run, Settings(WithMetric(Path.Combine(_dir, "missing"))))).ExitCode.Should().Be(0);
        RunJournal.Events<EvaluationRecorded>(RunJournal.Read(run)).Should().BeEmpty();
        Finished(run).WeightsSha256.Should().Be(Finished(clean).WeightsSha256);
        Finished(run).EmaSha256.Should().Be(Finished(clean).EmaSha256);
        File.Exists(Path.Combine(run, "metrics.jsonl")).Should().BeFalse();
    }

    public void Dispose()
    {
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }
}
