using Akka.Actor;
using Akka.Event;
using Ect.Actors.Configuration;
using Ect.Actors.Engine;
using Ect.Actors.Evaluation;
using Ect.Actors.Output;
using Ect.Compute.Evaluation;
using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Actors.Run;

/// <summary>
/// The daemon's `fd-resnet18` evaluator: FD-ResNet18 (a cheap Frechet distance on ResNet-18 features; not FID) of
/// <c>count</c> consistency samples of the EMA network per listed number of sampling steps, against reference
/// statistics of the run's dataset. Same code path as `ect eval`: <see cref="DatasetReference"/> (first
/// reference-count images, brought to the generator's resolution, cached by content hash in cache-dir, so a dataset
/// is processed once, also across runs and by `ect eval`) and <see cref="MetricRunner"/>.
/// <para>
/// Generation: batch b (of <c>batch</c> images) comes from IEvaluationModel.Generate with seed
/// <see cref="ImageGenerator.BatchSeed"/>(seed, b) and first image b * batch (ImageGenerator, `ect eval`'s path), the same seeds for every number of sampling steps and every evaluation, so values
/// are comparable across steps and the same weights give the same value.
/// </para>
/// Each result is appended to metrics.jsonl and fd.png is redrawn from it. Any failure (no ONNX model, no dataset, a
/// channel mismatch) is reported as EvaluationFailed and rethrown, so the supervisor restarts this actor; training is
/// not involved.
/// </summary>
public sealed class FdResNet18Evaluator : ReceiveActor
{
    public const string TypeName = "fd-resnet18";
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly EvaluatorSettings _settings;
    private readonly string _runDir;
    private readonly string _dataPath;
    private readonly Func<EvaluatorSettings, IFeatureExtractor> _extractorFactory;
    private IFeatureExtractor? _extractor;
    private readonly HashSet<string> _warned = new(); // small-sample warnings repeat at every evaluation: log each once
    private (int Channels, int Resolution, DatasetReferenceResult Result)? _reference;

    public static Props Props(EvaluatorSettings s, string runDir, string dataPath, IActorRef coordinator,
        Func<EvaluatorSettings, IFeatureExtractor>? extractorFactory = null) =>
        Akka.Actor.Props.Create(() => new FdResNet18Evaluator(s, runDir, dataPath, coordinator, extractorFactory))
            .WithDispatcher("ect.evaluation-dispatcher");

    public FdResNet18Evaluator(EvaluatorSettings s, string runDir, string dataPath, IActorRef coordinator,
        Func<EvaluatorSettings, IFeatureExtractor>? extractorFactory)
    {
        _settings = s;
        _runDir = runDir;
        _dataPath = dataPath;
        _extractorFactory = extractorFactory ?? (e => new ResNet18OnnxExtractor(e.Threads));
        Receive<Evaluate>(m =>
        {
            using var model = m.Model;
            try
            {
                var metrics = Run(m.Step, m.Kimg, model);
                coordinator.Tell(new EvaluationDone(TypeName, m.Step, [MetricsFile.Name, FdPlot.Name], metrics, m.Final));
            }
            catch (Exception e)
            {
                _log.Error(e, "fd-resnet18 evaluation at step {0} failed", m.Step);
                coordinator.Tell(new EvaluationFailed(TypeName, m.Step, e.Message, m.Final));
                throw; // the supervisor restarts this evaluator; training goes on
            }
        });
    }

    private Dictionary<string, double> Run(long step, double kimg, IEvaluationModel model)
    {
        // Created here, not in the constructor: a missing ONNX model must surface as EvaluationFailed, not as an
        // actor that cannot start.
        _extractor ??= _extractorFactory(_settings);
        // OpenMP's thread count is per thread, and a new thread inherits the last count set anywhere (the trainer's):
        // set this thread's own, so the statistics (and so the metric's bits) never depend on what ran before.
        torch.set_num_threads(_settings.Threads);
        var reference = Reference(model.Channels, model.Resolution);
        var metrics = new Dictionary<string, double>();
        foreach (var n in _settings.SamplingSteps)
        {
            var name = MetricKey(n);
            var result = Compute(model, n, reference, name, step);
            metrics[name] = result.Value;
            foreach (var w in result.Warnings)
                if (_warned.Add(w)) _log.Warning("{0} at step {1}: {2} (said once)", name, step, w);
            MetricsFile.Append(_runDir, new MetricRecord(step, kimg, name, n, result.Value, _settings.Count, reference.Images, result.Elapsed.TotalSeconds));
            _log.Info("{0} = {1:0.####} at step {2} ({3} images vs {4} reference images, {5:0.0} s)",
                name, result.Value, step, _settings.Count, reference.Images, result.Elapsed.TotalSeconds);
        }
        FdPlot.Write(_runDir);
        return metrics;
    }

    /// <summary>
    /// One value, computed once. Non-finite samples or a non-finite value fail the evaluation with a message naming the
    /// step and what to check; nothing is recomputed. (Until issue 17 this retried up to 3 times: TorchSharp 0.107's
    /// implicit Scalars could be freed by the GC finalizer while libtorch read them. Every Scalar of the sampling and
    /// statistics code is now ours, docs/torchsharp-scalar-race.md, so a non-finite value is a real one.)
    /// </summary>
    private MetricResult Compute(IEvaluationModel model, int samplingSteps, DatasetReferenceResult reference, string name, long step)
    {
        var result = MetricRunner.Compute(b => GenerateBatch(model, samplingSteps, b, step), _settings.Count, _extractor!, reference.Statistics);
        if (!double.IsFinite(result.Value))
            throw new NonFiniteEvaluationException(
                $"{name} at step {step} came out {result.Value} although every sample was finite: the features of the generated " +
                "images or the reference statistics are degenerate; delete the reference cache in ect.evaluation cache-dir and check the dataset.");
        return result;
    }

    /// <summary>Samples or a value that are not finite: the evaluation fails (EvaluationFailed), training goes on.</summary>
    public sealed class NonFiniteEvaluationException(string message) : Exception(message);

    /// <summary>"fd-resnet18-1step", "fd-resnet18-2step": the metric names in EvaluationDone, the journal and metrics.jsonl.</summary>
    public static string MetricKey(int samplingSteps) => $"{TypeName}-{samplingSteps}step";

    private DatasetReferenceResult Reference(int channels, int resolution)
    {
        if (_reference is { } r && r.Channels == channels && r.Resolution == resolution) return r.Result;
        var cacheDir = _settings.CacheDir.Length > 0 ? _settings.CacheDir : DatasetReference.DefaultCacheDirectory;
        var result = DatasetReference.Compute(_dataPath, _settings.ReferenceCount, channels, resolution, _extractor!, cacheDir, _settings.Batch,
            "the run's generator", "ect.data.path must be the run's training set.");
        _log.Info("fd-resnet18 reference: {0} images of '{1}' ({2} {3})", result.Images, _dataPath,
            result.Reference.FromCache ? "cached in" : "computed, cached in", result.Reference.CachePath);
        _reference = (channels, resolution, result);
        return result;
    }

    private Tensor GenerateBatch(IEvaluationModel model, int samplingSteps, int batchIndex, long step)
    {
        var n = Math.Min(_settings.Batch, _settings.Count - batchIndex * _settings.Batch);
        if (n <= 0) throw new InvalidOperationException($"batch {batchIndex} is past the {_settings.Count} images requested");
        var pixels = model.Generate(n, samplingSteps, ImageGenerator.BatchSeed(_settings.Seed, batchIndex), _settings.TMax, _settings.MidT,
            firstImage: batchIndex * _settings.Batch);
        torch.set_num_threads(_settings.Threads); // the EMA model samples with ect.evaluation.threads
        long[] shape = [n, model.Channels, model.Resolution, model.Resolution];
        if (pixels.LongLength != shape.Aggregate(1L, (a, b) => a * b))
            throw new InvalidDataException($"the model returned {pixels.Length} values for {n} images of {model.Channels}x{model.Resolution}x{model.Resolution}");
        if (Array.FindIndex(pixels, v => !float.IsFinite(v)) is var bad and >= 0)
            throw new NonFiniteEvaluationException(
                $"batch {batchIndex} of the {samplingSteps}-step samples at step {step} has a non-finite value ({pixels[bad]} at {bad}): " +
                "the EMA network produces NaN or infinity; check the run's loss and the NaN-streak rollbacks in `ect history`.");
        return tensor(pixels, shape);
    }

    protected override void PostStop()
    {
        _extractor?.Dispose();
        _extractor = null;
        base.PostStop();
    }
}
