using System.Text.Json;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using Ect.Actors.Checkpoints;
using Ect.Actors.Configuration;
using Ect.Actors.Engine;
using Ect.Actors.Evaluation;
using Ect.Actors.Run;
using Ect.Compute.Evaluation;
using Ect.Compute.Losses;
using Ect.Compute.Networks.Edm2;
using Ect.Compute.Optim;
using Ect.Compute.Preconditioning;
using Ect.Compute.Training;
using Ect.Data;
using Ect.Data.Sources;
using FluentAssertions;
using TorchSharp;
using Xunit;

namespace Ect.Actors.Tests.Eval;

/// <summary>
/// `ect eval` on an EDM2 checkpoint (issue 14) through the one image generator: the daemon's fd-resnet18 of a tiny
/// class-conditional EDM2's EMA equals `ect eval`'s of the checkpoint written from the same state (same seed, same
/// batches, image i of class i mod L on both paths), and `--class K` samples one class (refused for an unconditional
/// network or a class the network does not have).
/// </summary>
[Collection("Console")]
public sealed class Edm2EvalTests() : TestKit("ect.evaluation-dispatcher { type = PinnedDispatcher }")
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ect-edm2-eval-").FullName;
    private string DataPath => Path.Combine(_dir, "train-images-idx3-ubyte");
    private string Checkpoint => Path.Combine(_dir, "ckpt-000002.ckpt");

    private static readonly Edm2UNetConfig Net = new()
    {
        ImgResolution = 16, ImgChannels = 1, LabelDim = 3, ModelChannels = 16, ChannelMult = [1, 2], NumBlocks = 1,
        AttnResolutions = [], Dropout = 0.1,
    };

    /// <summary>A tiny EDM2 trained one pretraining and one tuning step; its checkpoint written, its EMA captured.</summary>
    private IEvaluationModel TrainAndCapture()
    {
        torch.set_num_threads(1);
        TinyCheckpointFixture.WriteIdx(DataPath, 24);
        // EDM2 starts with out_gain = 0 (the network's output, and so the labels' effect, is nil): a large first step
        // and EMA beta 0 give the EMA an output that depends on the class, so the checks below can see the labels.
        var o = new Edm2EngineOptions(Net, BatchSize: 4, Seed: 7, Threads: 1, EmaBeta: 0.0,
            PretrainLr: 0.3, Pretrain: new PretrainSettings(-1.2, 1.2),
            TuningLr: 1e-4, Tuning: new TuningSettings(OptimizerKind.Adam, -0.8, 1.6, MappingKind.Sigmoid, Q: 4, K: 8, B: 1, C: 0.06),
            Edm2: new Edm2Settings(0.9, 0.99, 0, [0.05], 0)) { DataPath = DataPath };
        using var data = DatasetSource.Load(DataPath);
        using var engine = new Edm2TrainingEngine(o, Path.Combine(_dir, "run"));
        var assembler = new BatchAssembler(data, 4, 7, new BatchOptions { Resolution = 16, UseLabels = false });
        engine.SetPhase(Phases.Pretrain);
        using (var b = new Batch(assembler.Next(), 4, "")) engine.Step(b);
        engine.SetPhase(Phases.Tuning);
        using (var b = new Batch(assembler.Next(), 4, "")) engine.Step(b);
        using (var image = engine.Capture(new Dictionary<string, string> { ["step"] = "2", ["kimg"] = "0.008", ["phase"] = "tuning" }))
            image.WriteTo(Checkpoint);
        return engine.CaptureEma();
    }

    [Fact]
    public void The_daemons_fd_resnet18_equals_ect_evals_on_an_edm2_checkpoint()
    {
        var ema = TrainAndCapture();
        using var model = CheckpointModel.Load(Checkpoint);
        model.Edm2Config.Should().NotBeNull();
        model.Net.Should().BeOfType<Edm2Precond>();
        (model.Net.LabelDim, model.Net.ImgResolution, model.NetworkName).Should().Be((3, 16, "EDM2"));

        const int count = 5, batch = 2, seed = 11, references = 12;
        // The images, batch by batch (batch 1 starts at image 2: classes 2, 0).
        for (var b = 0; b < 3; b++)
        {
            var n = Math.Min(batch, count - b * batch);
            var daemonImages = ema.Generate(n, 1, ImageGenerator.BatchSeed(seed, b), 80, 0.821, firstImage: b * batch);
            using var evalImages = ImageGenerator.Generate(model.Net, new SamplerChoice.Consistency([80.0]), n, b * batch, ImageGenerator.BatchSeed(seed, b));
            evalImages.data<float>().ToArray().Should().Equal(daemonImages, $"batch {b} is the same images on both paths");
        }

        var cache = Path.Combine(_dir, "stats");
        var settings = new EvaluatorSettings(FdResNet18Evaluator.TypeName, [1], count, seed, TMax: 80, MidT: 0.821)
        {
            ReferenceCount = references, Batch = batch, CacheDir = cache, Threads = 1,
        };
        var evaluator = Sys.ActorOf(FdResNet18Evaluator.Props(settings, Directory.CreateDirectory(Path.Combine(_dir, "evalrun")).FullName, DataPath, TestActor));
        evaluator.Tell(new Evaluate(2, ema, false, 0.008));
        var daemon = ExpectMsg<EvaluationDone>(TimeSpan.FromMinutes(3)).Metrics["fd-resnet18-1step"];

        using var extractor = new ResNet18OnnxExtractor(1);
        var eval = CheckpointEvaluation.Run(new EvalRequest(model, new SamplerChoice.Consistency([80.0]), extractor, DataPath,
            Num: count, Seed: seed, ReferenceImages: references, CacheDirectory: cache, BatchSize: batch));
        double.IsFinite(daemon).Should().BeTrue();
        eval.Metric.Value.Should().Be(daemon, "the daemon and `ect eval` draw the same images from the same EDM2 weights");
        // The labels are part of it: one class only gives other images, so another distance.
        var oneClass = CheckpointEvaluation.Run(new EvalRequest(model, new SamplerChoice.Consistency([80.0]), extractor, DataPath,
            Num: count, Seed: seed, ReferenceImages: references, CacheDirectory: cache, BatchSize: batch) { Classes = new ClassLabels.One(1) });
        oneClass.Metric.Value.Should().NotBe(daemon);
    }

    [Fact]
    public void Ect_eval_class_samples_one_class_of_an_edm2_checkpoint_and_refuses_a_class_it_lacks()
    {
        TrainAndCapture().Dispose();
        var cache = Path.Combine(_dir, "stats");
        string[] Eval(string outFile, params string[] more) =>
            ["eval", "--checkpoint", Checkpoint, "--num", "4", "--threads", "1", "--batch", "4", "--cache-dir", cache,
             "--out", Path.Combine(_dir, outFile), "--ref-num", "8", .. more];

        var (code, output, err) = CliHarness.Run(Eval("one.json", "--class", "2", "--grid", Path.Combine(_dir, "one.png")));
        code.Should().Be(0, err);
        output.Should().Contain("EDM2").And.Contain("class 2 only").And.Contain("FD-ResNet18 = ");
        using (var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(_dir, "one.json"))))
        {
            doc.RootElement.GetProperty("class").GetInt32().Should().Be(2);
            doc.RootElement.GetProperty("network").GetString().Should().Be("EDM2");
        }
        File.Exists(Path.Combine(_dir, "one.png")).Should().BeTrue();

        // The grid's pixels are the class-2 images ImageGenerator makes (and not the default's classes 0, 1, 2, 0).
        using var model = CheckpointModel.Load(Checkpoint);
        using var class2 = ImageGenerator.Generate(model.Net, new SamplerChoice.Consistency([80.0]), 4, 0, ImageGenerator.BatchSeed(0, 0), new ClassLabels.One(2));
        using var cycle = ImageGenerator.Generate(model.Net, new SamplerChoice.Consistency([80.0]), 4, 0, ImageGenerator.BatchSeed(0, 0));
        var expected = Path.Combine(_dir, "expected.raw.png");
        Ect.Actors.Output.Png.SaveGrid(expected, class2.data<float>().ToArray(), 4, 1, 16);
        File.ReadAllBytes(Path.Combine(_dir, "one.raw.png")).Should().Equal(File.ReadAllBytes(expected), "the grid shows the measured class-2 images");
        class2.data<float>().ToArray().Should().NotEqual(cycle.data<float>().ToArray(), "the class changes the images");

        (code, _, err) = CliHarness.Run(Eval("three.json", "--class", "3"));
        code.Should().Be(1);
        err.Should().Contain("--class 3").And.Contain("3 classes").And.Contain(Checkpoint);
        File.Exists(Path.Combine(_dir, "three.json")).Should().BeFalse();
        (code, _, err) = CliHarness.Run(Eval("neg.json", "--class", "-1"));
        code.Should().Be(1);
        err.Should().Contain("--class -1");
    }
}
