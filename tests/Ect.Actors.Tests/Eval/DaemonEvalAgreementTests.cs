using Akka.Actor;
using Akka.TestKit.Xunit2;
using Ect.Actors.Configuration;
using Ect.Actors.Engine;
using Ect.Actors.Evaluation;
using Ect.Actors.Run;
using Ect.Compute.Evaluation;
using Ect.Compute.Losses;
using Ect.Compute.Networks;
using Ect.Compute.Optim;
using Ect.Data;
using Ect.Data.Sources;
using FluentAssertions;
using TorchSharp;
using Xunit;
using Ect.Actors.Checkpoints;

namespace Ect.Actors.Tests.Eval;

/// <summary>
/// One way to make images from a model (ImageGenerator): the daemon's fd-resnet18 of a training state (the EMA copy the
/// trainer hands its evaluators) equals `ect eval`'s of the checkpoint written from that state, same seed, same batch.
/// A class-conditional network, so the label of each image (class i mod L across batches) is part of the check.
/// </summary>
public sealed class DaemonEvalAgreementTests() : TestKit("ect.evaluation-dispatcher { type = PinnedDispatcher }")
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ect-agree-").FullName;
    private string DataPath => Path.Combine(_dir, "train-images-idx3-ubyte");

    /// <summary>A class-conditional tiny network trained 2 steps (1 pretraining, 1 tuning): its checkpoint and its EMA as the trainer hands it to evaluators.</summary>
    private (string Checkpoint, IEvaluationModel Ema) TrainTinyRun()
    {
        torch.set_num_threads(1);
        TinyCheckpointFixture.WriteIdx(DataPath, 24);
        // 3 classes, 5 images in batches of 2: batches start at images 0, 2, 4, so a per-batch label restart would differ.
        var net = SongUNetConfig.DdpmPP(32, 1, 3, 4, [1, 2], 1, [16], 0.1);
        var o = new TorchEngineOptions(net, BatchSize: 4, Seed: 7, Threads: 1, EmaBeta: 0.9,
            PretrainLr: 1e-3, Pretrain: new PretrainSettings(-1.2, 1.2),
            TuningLr: 1e-4, Tuning: new TuningSettings(OptimizerKind.RAdam, -1.1, 2.0, MappingKind.Sigmoid, Q: 2, K: 8, B: 1, C: 0.06)) { DataPath = DataPath };
        var checkpoint = Path.Combine(_dir, "ckpt-000002.ckpt");
        IEvaluationModel ema;
        using (var data = DatasetSource.Load(DataPath))
        using (var engine = new TorchTrainingEngine(o, Path.Combine(_dir, "scratch")))
        {
            var assembler = new BatchAssembler(data, 4, 7, new BatchOptions { Resolution = 32, UseLabels = false });
            // A tuning checkpoint: `ect eval` samples it with ECT's preconditioning, as the daemon's evaluators do
            // (a pretraining checkpoint is evaluated as EDM's denoiser unless --as says otherwise).
            engine.SetPhase(Phases.Pretrain);
            using (var b = new Batch(assembler.Next(), 4, "")) engine.Step(b);
            engine.SetPhase(Phases.Tuning);
            using (var b = new Batch(assembler.Next(), 4, "")) engine.Step(b);
            using (var image = engine.Capture(new Dictionary<string, string> { ["step"] = "2", ["kimg"] = "0.008", ["phase"] = "tuning" }))
                image.WriteTo(checkpoint);
            ema = engine.CaptureEma();
        }
        return (checkpoint, ema);
    }

    [Fact]
    public void The_daemons_fd_resnet18_equals_ect_evals_on_the_same_checkpoint_and_seed()
    {
        var (checkpoint, ema) = TrainTinyRun();
        const int count = 5, batch = 2, seed = 11, references = 12;
        var cache = Path.Combine(_dir, "stats");
        var settings = new EvaluatorSettings(FdResNet18Evaluator.TypeName, [1], count, seed, TMax: 80, MidT: 0.821)
        {
            ReferenceCount = references, Batch = batch, CacheDir = cache, Threads = 1,
        };
        // The images first, batch by batch (batch 1 starts at image 2: its labels are 2, 0 with 3 classes).
        using var model = CheckpointModel.Load(checkpoint);
        for (var b = 0; b < 3; b++)
        {
            var n = Math.Min(batch, count - b * batch);
            var daemonImages = ema.Generate(n, 1, ImageGenerator.BatchSeed(seed, b), 80, 0.821, firstImage: b * batch);
            using var evalImages = ImageGenerator.Generate(model.Net, new SamplerChoice.Consistency([80.0]), n, b * batch,
                ImageGenerator.BatchSeed(seed, b));
            evalImages.data<float>().ToArray().Should().Equal(daemonImages, $"batch {b} is the same images on both paths");
        }

        var runDir = Directory.CreateDirectory(Path.Combine(_dir, "run")).FullName;
        var evaluator = Sys.ActorOf(FdResNet18Evaluator.Props(settings, runDir, DataPath, TestActor));
        evaluator.Tell(new Evaluate(1, ema, false, 0.004));
        var daemon = ExpectMsg<EvaluationDone>(TimeSpan.FromMinutes(3)).Metrics["fd-resnet18-1step"];

        using var extractor = new ResNet18OnnxExtractor(1);
        var eval = CheckpointEvaluation.Run(new EvalRequest(model, new SamplerChoice.Consistency([80.0]), extractor, DataPath,
            Num: count, Seed: seed, ReferenceImages: references, CacheDirectory: cache, BatchSize: batch));

        double.IsFinite(daemon).Should().BeTrue();
        eval.Metric.Value.Should().Be(daemon, "the daemon and `ect eval` draw the same images from the same weights");
        // And the seed matters (the check would pass trivially if both ignored it).
        var other = CheckpointEvaluation.Run(new EvalRequest(model, new SamplerChoice.Consistency([80.0]), extractor, DataPath,
            Num: count, Seed: seed + 1, ReferenceImages: references, CacheDirectory: cache, BatchSize: batch));
        other.Metric.Value.Should().NotBe(daemon);
    }

    [Fact]
    public void Four_step_evaluation_samples_at_ect_evals_four_step_times_and_reports_fd_resnet18_4step()
    {
        var (checkpoint, ema) = TrainTinyRun();
        using var model = CheckpointModel.Load(checkpoint);
        var karras = SamplerChoice.ConsistencyTimes(4);
        karras.Should().HaveCount(4).And.BeInDescendingOrder();
        const int n = 2, seed = 5;
        var daemon4 = ema.Generate(n, 4, ImageGenerator.BatchSeed(seed, 0), 80, 0.821);
        using var eval4 = ImageGenerator.Generate(model.Net, new SamplerChoice.Consistency(karras), n, 0, ImageGenerator.BatchSeed(seed, 0));
        eval4.data<float>().ToArray().Should().Equal(daemon4, "4 steps in the run are `ect eval --steps 4`'s times");
        var daemon2 = ema.Generate(n, 2, ImageGenerator.BatchSeed(seed, 0), 80, 0.821);
        daemon2.Should().NotEqual(daemon4, "4 steps are not the 2-step sampler");

        var settings = new EvaluatorSettings(FdResNet18Evaluator.TypeName, [4], Count: 4, Seed: seed, TMax: 80, MidT: 0.821)
        {
            ReferenceCount = 12, Batch = 2, CacheDir = Path.Combine(_dir, "stats"), Threads = 1,
        };
        var runDir = Directory.CreateDirectory(Path.Combine(_dir, "run4")).FullName;
        Sys.ActorOf(FdResNet18Evaluator.Props(settings, runDir, DataPath, TestActor)).Tell(new Evaluate(1, ema, false, 0.004));
        var done = ExpectMsg<EvaluationDone>(TimeSpan.FromMinutes(3));
        done.Metrics.Keys.Should().Equal("fd-resnet18-4step");
        double.IsFinite(done.Metrics["fd-resnet18-4step"]).Should().BeTrue();
    }
}
