using Akka.Actor;
using Akka.TestKit.Xunit2;
using Ect.Actors.Configuration;
using Ect.Actors.Engine;
using Ect.Actors.Output;
using Ect.Actors.Run;
using Ect.Actors.Tests.Eval;
using Ect.Compute.Evaluation;
using FluentAssertions;
using TorchSharp;
using Xunit;

namespace Ect.Actors.Tests.Metric;

/// <summary>
/// A deterministic stand-in for an EMA network: 16x16 grey images, a bright square whose place depends on the seed,
/// plus seeded noise whose size depends on the number of sampling steps (so 1 and 2 steps give different values).
/// </summary>
internal sealed class StubEvaluationModel : IEvaluationModel
{
    public int Channels => 1;
    public int Resolution => 16;
    public List<(int Count, int Steps, int Seed)> Calls { get; } = new();
    public bool Disposed { get; private set; }

    public float[] Generate(int count, int samplingSteps, int seed, double tMax, double midT, int firstImage = 0, Ect.Actors.Evaluation.ClassLabels? classes = null)
    {
        Calls.Add((count, samplingSteps, seed));
        var rng = new Random(seed);
        var img = new float[count * 256];
        for (var n = 0; n < count; n++)
        {
            int cx = rng.Next(3, 13), cy = rng.Next(3, 13);
            for (var y = 0; y < 16; y++)
            for (var x = 0; x < 16; x++)
            {
                var square = Math.Abs(x - cx) <= 2 && Math.Abs(y - cy) <= 2 ? 1.6f : 0f;
                img[n * 256 + y * 16 + x] = Math.Clamp(-0.8f + square + (float)(rng.NextDouble() - 0.5) * 0.3f * samplingSteps, -1f, 1f);
            }
        }
        return img;
    }

    public void Dispose() => Disposed = true;
}

public sealed class MetricEvaluatorTests : TestKit, IDisposable
{
    private const string Hocon = "ect.evaluation-dispatcher { type = PinnedDispatcher }";
    private readonly string _dir = Directory.CreateTempSubdirectory("ect-metric-").FullName;
    private string RunDir => Path.Combine(_dir, "run");
    private string DataPath => Path.Combine(_dir, "train-images-idx3-ubyte");
    private string CacheDir => Path.Combine(_dir, "stats");

    public MetricEvaluatorTests() : base(Hocon)
    {
        torch.set_num_threads(1);
        Directory.CreateDirectory(RunDir);
    }

    private EvaluatorSettings Settings(params int[] steps) =>
        new(FdResNet18Evaluator.TypeName, steps, Count: 16, Seed: 5, TMax: 80, MidT: 0.821)
        {
            ReferenceCount = 20, Batch = 6, CacheDir = CacheDir, Threads = 1,
        };

    private IActorRef Evaluator(EvaluatorSettings s, Func<EvaluatorSettings, IFeatureExtractor>? extractor = null) =>
        Sys.ActorOf(FdResNet18Evaluator.Props(s, RunDir, DataPath, TestActor, extractor));

    [Fact]
    public void Evaluation_reports_finite_values_per_sampling_steps_writes_metrics_jsonl_and_fd_png_and_repeats_exactly()
    {
        TinyCheckpointFixture.WriteIdx(DataPath, 24);
        var evaluator = Evaluator(Settings(1, 2));

        var model = new StubEvaluationModel();
        evaluator.Tell(new Evaluate(10, model, false, 0.32));
        var first = ExpectMsg<EvaluationDone>(TimeSpan.FromMinutes(3));
        first.Evaluator.Should().Be("fd-resnet18");
        first.Step.Should().Be(10);
        first.Metrics.Keys.Should().BeEquivalentTo("fd-resnet18-1step", "fd-resnet18-2step");
        first.Metrics.Values.Should().OnlyContain(v => double.IsFinite(v) && v > 0);
        first.Metrics["fd-resnet18-1step"].Should().NotBe(first.Metrics["fd-resnet18-2step"]);
        first.Files.Should().Equal("metrics.jsonl", "fd.png");
        model.Disposed.Should().BeTrue("the evaluator owns the EMA copy it was handed");
        // 16 images in batches of 6: 6, 6, 4, with seeds derived per batch, the same for 1 and 2 steps.
        model.Calls.Should().Equal(
            (6, 1, Ect.Actors.Evaluation.ImageGenerator.BatchSeed(5, 0)), (6, 1, Ect.Actors.Evaluation.ImageGenerator.BatchSeed(5, 1)), (4, 1, Ect.Actors.Evaluation.ImageGenerator.BatchSeed(5, 2)),
            (6, 2, Ect.Actors.Evaluation.ImageGenerator.BatchSeed(5, 0)), (6, 2, Ect.Actors.Evaluation.ImageGenerator.BatchSeed(5, 1)), (4, 2, Ect.Actors.Evaluation.ImageGenerator.BatchSeed(5, 2)));
        Directory.GetFiles(CacheDir, "*.ectstats").Should().ContainSingle("the reference statistics are cached");

        // Same weights, later step: the same values, bit for bit (reference from memory this time).
        evaluator.Tell(new Evaluate(20, new StubEvaluationModel(), false, 0.64));
        var second = ExpectMsg<EvaluationDone>(TimeSpan.FromMinutes(3));
        second.Metrics.Should().Equal(first.Metrics);

        var rows = MetricsFile.Read(RunDir);
        rows.Select(r => (r.Step, r.Metric)).Should().Equal(
            (10, "fd-resnet18-1step"), (10, "fd-resnet18-2step"), (20, "fd-resnet18-1step"), (20, "fd-resnet18-2step"));
        rows[0].Kimg.Should().Be(0.32);
        rows[0].Value.Should().Be(first.Metrics["fd-resnet18-1step"]);
        rows.Should().OnlyContain(r => r.Count == 16 && r.ReferenceCount == 20 && r.ElapsedSeconds > 0);
        File.ReadAllLines(Path.Combine(RunDir, "metrics.jsonl")).Should().HaveCount(4);
        var png = File.ReadAllBytes(Path.Combine(RunDir, "fd.png"));
        png.Take(4).Should().Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' });

        // A fresh actor (as after a restart) reads the reference from the cache file and still gives the same value.
        var again = Evaluator(Settings(1));
        again.Tell(new Evaluate(10, new StubEvaluationModel(), false));
        ExpectMsg<EvaluationDone>(TimeSpan.FromMinutes(3)).Metrics["fd-resnet18-1step"].Should().Be(first.Metrics["fd-resnet18-1step"]);
    }

    /// <summary>A stub whose samples hold a NaN in the listed calls (-1: every call).</summary>
    private sealed class CorruptedCalls(params int[] corrupted) : IEvaluationModel
    {
        private readonly StubEvaluationModel _inner = new();
        private int _calls;
        public int Channels => _inner.Channels;
        public int Resolution => _inner.Resolution;
        public float[] Generate(int count, int samplingSteps, int seed, double tMax, double midT, int firstImage = 0, Ect.Actors.Evaluation.ClassLabels? classes = null)
        {
            var pixels = _inner.Generate(count, samplingSteps, seed, tMax, midT);
            if (corrupted.Contains(++_calls) || corrupted.Contains(-1)) pixels[count / 2] = float.NaN;
            return pixels;
        }
        public void Dispose() => _inner.Dispose();
    }

    [Fact]
    public void Non_finite_samples_fail_the_evaluation_at_once_with_a_clear_message_and_the_next_one_works()
    {
        TinyCheckpointFixture.WriteIdx(DataPath, 24);
        var evaluator = Evaluator(Settings(1));
        evaluator.Tell(new Evaluate(10, new StubEvaluationModel(), false));
        var clean = ExpectMsg<EvaluationDone>(TimeSpan.FromMinutes(3));

        // One corrupted batch is enough: nothing is recomputed (the TorchSharp Scalar race that once justified a retry
        // is fixed at its source, docs/torchsharp-scalar-race.md).
        var corrupted = new CorruptedCalls(2);
        evaluator.Tell(new Evaluate(20, corrupted, false));
        var failed = ExpectMsg<EvaluationFailed>(TimeSpan.FromMinutes(3));
        failed.Step.Should().Be(20);
        failed.Reason.Should().Contain("batch 1 of the 1-step samples at step 20 has a non-finite value").And.Contain("NaN-streak");
        MetricsFile.Read(RunDir).Select(r => r.Step).Should().Equal(10L);

        // The supervisor restarts the evaluator; the next evaluation gives the clean value again.
        evaluator.Tell(new Evaluate(30, new StubEvaluationModel(), false));
        ExpectMsg<EvaluationDone>(TimeSpan.FromMinutes(3)).Metrics.Should().Equal(clean.Metrics);
        MetricsFile.Read(RunDir).Select(r => r.Step).Should().Equal(10L, 30L);
    }

    [Fact]
    public void A_missing_onnx_model_gives_EvaluationFailed_naming_the_file()
    {
        TinyCheckpointFixture.WriteIdx(DataPath, 24);
        var missing = Path.Combine(_dir, "no-such", "ResNet18.onnx");
        var evaluator = Evaluator(Settings(1), s => new ResNet18OnnxExtractor(s.Threads, modelPath: missing));
        var model = new StubEvaluationModel();
        evaluator.Tell(new Evaluate(10, model, true));
        var failed = ExpectMsg<EvaluationFailed>(TimeSpan.FromMinutes(1));
        (failed.Evaluator, failed.Step, failed.Final).Should().Be(("fd-resnet18", 10L, true));
        failed.Reason.Should().Contain(missing);
        model.Disposed.Should().BeTrue();
        File.Exists(Path.Combine(RunDir, "metrics.jsonl")).Should().BeFalse();
    }

    [Fact]
    public void A_bad_data_path_fails_then_the_restarted_evaluator_works_once_the_dataset_is_there()
    {
        var supervisor = Sys.ActorOf(EvaluationSupervisor.Props([Settings(1)], RunDir, DataPath, TestActor));
        supervisor.Tell(new EvaluationRequest(10, [new StubEvaluationModel()], false));
        ExpectMsg<EvaluationFailed>(TimeSpan.FromMinutes(1)).Reason.Should().Contain(DataPath);

        TinyCheckpointFixture.WriteIdx(DataPath, 24);
        supervisor.Tell(new EvaluationRequest(20, [new StubEvaluationModel()], false));
        var done = ExpectMsg<EvaluationDone>(TimeSpan.FromMinutes(3));
        done.Step.Should().Be(20);
        done.Metrics["fd-resnet18-1step"].Should().BeGreaterThan(0);
    }

    [Fact]
    public void Batch_seeds_are_distinct_non_negative_and_depend_on_the_seed()
    {
        var seeds = Enumerable.Range(0, 1000).Select(b => Ect.Actors.Evaluation.ImageGenerator.BatchSeed(1234, b)).ToList();
        seeds.Should().OnlyHaveUniqueItems().And.OnlyContain(s => s >= 0);
        Ect.Actors.Evaluation.ImageGenerator.BatchSeed(1235, 0).Should().NotBe(seeds[0]);
        Ect.Actors.Evaluation.ImageGenerator.BatchSeed(1234, 0).Should().Be(seeds[0]);
    }

    [Fact]
    public void Fd_png_is_rebuilt_from_metrics_jsonl_alone_the_last_line_winning_per_step()
    {
        MetricsFile.Append(RunDir, new MetricRecord(10, 0.3, "fd-resnet18-1step", 1, 50.0, 16, 20, 1.0));
        MetricsFile.Append(RunDir, new MetricRecord(10, double.NaN, "fd-resnet18-2step", 2, 40.0, 16, 20, 1.0));
        File.AppendAllText(Path.Combine(RunDir, "metrics.jsonl"), "{\"step\":20,\"kim"); // a line cut by a kill
        File.AppendAllText(Path.Combine(RunDir, "metrics.jsonl"), "\n");
        MetricsFile.Append(RunDir, new MetricRecord(10, 0.3, "fd-resnet18-1step", 1, 45.0, 16, 20, 1.0)); // re-evaluated after resume
        var rows = MetricsFile.Read(RunDir);
        rows.Select(r => (r.Metric, r.Value)).Should().Equal(("fd-resnet18-1step", 45.0), ("fd-resnet18-2step", 40.0));
        rows[1].Kimg.Should().Be(double.NaN);
        FdPlot.Write(RunDir).Should().Be(Path.Combine(RunDir, "fd.png"));
        new FileInfo(Path.Combine(RunDir, "fd.png")).Length.Should().BeGreaterThan(1000);
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }
}
