using System.Collections.Concurrent;
using Ect.Actors.Configuration;
using Ect.Actors.Engine;
using Ect.Compute.Evaluation;
using FluentAssertions;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Ect.Actors.Tests.RunTests;

/// <summary>
/// The daemon's evaluators sample EMA copies and extract FD-ResNet18 features on their own thread while the trainer
/// keeps training on its thread (issue 17, point 1: NaN features in-run, never in `ect eval`). Every sample set and its
/// features must be finite and equal a quiet rerun of the same EMA copy. It did not fail on this machine before the fix
/// either (the race needs a collection inside a native call): StatisticsBesideAnAllocatingThreadTests shows the cause.
/// </summary>
public class EvaluationBesideTrainingTests(ITestOutputHelper output)
{
    private const string Data = "/usr/share/datasets/fashion-mnist";

    [Fact]
    [Trait("Category", "Slow")] // 5 min on the shared 2-core machine under load (60 steps, 20 evaluations)
    public void Samples_and_features_taken_beside_training_are_finite_and_equal_a_quiet_rerun()
    {
        Directory.Exists(Data).Should().BeTrue($"Fashion-MNIST is installed at {Data} (apt-get install dataset-fashion-mnist)");
        var s = RunSettings.From(EctConfiguration.Load(null,
        [
            "run.engine=torch", "run.threads=2", "evaluation.threads=1", "data.batch-size=8", "data.max-images=64",
            "network.model-channels=8", "network.channel-mult=[1,2]", "network.num-blocks=1", "network.init=\"\"",
        ]));
        const int steps = 60, every = 3, count = 4;
        var models = new BlockingCollection<(int Step, IEvaluationModel Model)>();
        var captured = new List<(int Step, IEvaluationModel Model, float[] Pixels, float[] Features)>();
        Exception? failure = null;
        var trainer = new Thread(() =>
        {
            try
            {
                var (engine, source) = Engines.Torch(s, Directory.CreateTempSubdirectory("ect-beside-").FullName);
                using var _ = engine;
                using var __ = source;
                engine.SetPhase(Phases.Tuning);
                engine.SetLearningRate(1e-3);
                for (var step = 1; step <= steps; step++)
                {
                    using (var batch = source.Next()) engine.Step(batch);
                    if (step % every == 0) models.Add((step, engine.CaptureEma()));
                }
            }
            catch (Exception e) { failure = e; }
            finally { models.CompleteAdding(); }
        }) { Name = "ect-test-trainer" };
        using var extractor = new ResNet18OnnxExtractor(1);
        var evaluator = new Thread(() =>
        {
            try
            {
                foreach (var (step, model) in models.GetConsumingEnumerable())
                {
                    var pixels = model.Generate(count, 2, step, 80, 0.821);
                    using var images = tensor(pixels, [count, model.Channels, model.Resolution, model.Resolution]);
                    using var features = extractor.ExtractFeatures(images);
                    captured.Add((step, model, pixels, features.data<float>().ToArray()));
                }
            }
            catch (Exception e) { failure ??= e; }
        }) { Name = "ect-test-evaluator" };
        trainer.Start();
        evaluator.Start();
        trainer.Join();
        evaluator.Join();
        failure.Should().BeNull();
        captured.Should().HaveCount(steps / every);

        // The same models, once more with nothing else running: the reference for what each evaluation should have seen.
        var problems = new List<string>();
        var quiet = new Thread(() =>
        {
            foreach (var (step, model, pixels, features) in captured)
            {
                var again = model.Generate(count, 2, step, 80, 0.821);
                var pixelDiff = MaxAbsDiff(pixels, again);
                if (!pixels.All(float.IsFinite) || pixelDiff > 1e-4) problems.Add($"step {step}: samples differ from the quiet rerun by {pixelDiff} (finite: {pixels.All(float.IsFinite)})");
                if (!features.All(float.IsFinite)) problems.Add($"step {step}: features not finite");
            }
        });
        quiet.Start();
        quiet.Join();
        foreach (var c in captured) c.Model.Dispose();
        foreach (var p in problems) output.WriteLine(p);
        problems.Should().BeEmpty();
    }

    private static double MaxAbsDiff(float[] a, float[] b)
    {
        double m = 0;
        for (var i = 0; i < a.Length; i++)
        {
            var d = Math.Abs((double)a[i] - b[i]);
            if (double.IsNaN(d)) return double.PositiveInfinity;
            m = Math.Max(m, d);
        }
        return m;
    }
}
