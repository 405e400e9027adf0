using System.Diagnostics;
using Ect.Compute.Evaluation;
using Ect.Compute.Preconditioning;
using Ect.Compute.Sampling;
using TorchSharp;
using static TorchSharp.torch;
using Ect.Actors.Checkpoints;

namespace Ect.Actors.Evaluation;

/// <summary>How `ect eval` samples: consistency steps at given times, or EDM's Heun sampler with N steps.</summary>
public abstract record SamplerChoice
{
    /// <summary>ConsistencySampler at times t (t_N = 0 appended): [80] = 1 step, [80, 0.821] = 2 steps.</summary>
    public sealed record Consistency(IReadOnlyList<double> T) : SamplerChoice
    {
        public override int Steps => T.Count;
        public override int Nfe => T.Count;
        public override string Name => "consistency";
    }

    /// <summary>EDM's deterministic Heun sampler (2 steps - 1 network evaluations).</summary>
    public sealed record Heun(int NumSteps) : SamplerChoice
    {
        public override int Steps => NumSteps;
        public override int Nfe => 2 * NumSteps - 1;
        public override string Name => "heun";
    }

    public abstract int Steps { get; }
    public abstract int Nfe { get; }
    public abstract string Name { get; }

    /// <summary>
    /// The consistency times for <paramref name="steps"/> steps: the paper's [80] and [80, 0.821] for 1 and 2; for more,
    /// the first n points of EDM's rho = 7 schedule with n + 1 points from 80 to 0.002 (the last, nearly 0, is replaced by
    /// the sampler's own t = 0). Deviation: the ECT reference takes such lists by hand (--mid_t); this is only a default.
    /// </summary>
    /// <summary>
    /// The times the daemon's evaluators sample at: 1 step at <paramref name="tMax"/>, 2 at <paramref name="tMax"/> and
    /// <paramref name="midT"/> (their configured times), more at <see cref="ConsistencyTimes"/> (as `ect eval --steps N`).
    /// </summary>
    public static IReadOnlyList<double> EvaluatorTimes(int steps, double tMax, double midT) => steps switch
    {
        1 => [tMax],
        2 => [tMax, midT],
        _ => ConsistencyTimes(steps),
    };

    public static IReadOnlyList<double> ConsistencyTimes(int steps)
    {
        if (steps < 1) throw new ArgumentOutOfRangeException(nameof(steps), steps, "steps must be >= 1");
        if (steps == 1) return [80.0];
        if (steps == 2) return [80.0, 0.821];
        return HeunSampler.TimeSteps(new HeunSamplerConfig(NumSteps: steps + 1)).Take(steps).ToArray();
    }
}

/// <summary>What <see cref="CheckpointEvaluation.Run"/> needs; the verb fills it from the command line.</summary>
public sealed record EvalRequest(
    CheckpointModel Model, SamplerChoice Sampler, IFeatureExtractor Extractor, string DataPath, int Num, int Seed,
    int ReferenceImages, string CacheDirectory, int BatchSize)
{
    /// <summary>A class-conditional network's class of each image (null: image i gets class i mod L, the daemon's choice too).</summary>
    public ClassLabels? Classes { get; init; }

    /// <summary>Sees every generated batch [B,C,R,R] in [-1,1] before its features are taken (e.g. to save a grid); must not keep it.</summary>
    public Action<Tensor>? OnGenerated { get; init; }
}

/// <summary>The outcome, as printed and written to the JSON file.</summary>
public sealed record EvaluationOutcome(MetricResult Metric, int ReferenceImages, bool ReferenceFromCache, string ReferenceCachePath, TimeSpan Elapsed);

/// <summary>
/// `ect eval`'s work: the dataset's reference statistics (ReferenceStatisticsCache, keyed by a SHA-256 of the first
/// images' bytes and the network resolution), then N generated images from the checkpoint's EMA network through
/// MetricRunner. Generation: <see cref="ImageGenerator"/>, the daemon's path too (batch b seeded with
/// ImageGenerator.BatchSeed(Seed, b); image i gets class i mod L), so a fixed seed, batch size and thread count give
/// the same bits, and the daemon's fd-resnet18 of the same checkpoint and seed.
/// </summary>
public static class CheckpointEvaluation
{
    public static EvaluationOutcome Run(EvalRequest r, IProgress<MetricProgress>? progress = null, CancellationToken ct = default)
    {
        var sw = Stopwatch.StartNew();
        var net = r.Model.Net;
        var reference = DatasetReference.Compute(r.DataPath, r.ReferenceImages, net.ImgChannels, net.ImgResolution, r.Extractor,
            r.CacheDirectory, r.BatchSize, $"the network of '{r.Model.Path}'", "pass the run's dataset with --data.", progress, ct);

        var made = 0;
        Tensor Generate(int batchIndex)
        {
            var n = Math.Min(r.BatchSize, r.Num - made);
            using var scope = NewDisposeScope();
            var x = ImageGenerator.Generate(net, r.Sampler, n, made, ImageGenerator.BatchSeed(r.Seed, batchIndex), r.Classes);
            r.OnGenerated?.Invoke(x);
            made += n;
            return x.MoveToOuterDisposeScope();
        }
        // Generation of batch i + 1 overlaps the extraction of batch i (same images, same order, same value).
        var metric = MetricRunner.ComputeOverlapped(Generate, (r.Num + r.BatchSize - 1) / r.BatchSize, r.Num, r.Extractor, reference.Statistics, progress, ct);
        return new EvaluationOutcome(metric, reference.Images, reference.Reference.FromCache, reference.Reference.CachePath, sw.Elapsed);
    }
}
