using System.Collections.Concurrent;
using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Compute.Evaluation;

/// <summary>Progress of a statistics pass: images done out of the total, and the stage ("reference", "generated").</summary>
public readonly record struct MetricProgress(string Stage, long Done, long Total);

/// <summary>Result of <see cref="MetricRunner.Compute"/>.</summary>
/// <param name="MetricName">The extractor's metric name, e.g. "FD-ResNet18" (never call an FD-ResNet18 value "FID").</param>
/// <param name="Value">The Frechet distance.</param>
public sealed record MetricResult(
    string MetricName, double Value, FrechetDistanceResult Details, FeatureStatistics Generated,
    FeatureStatistics Reference, TimeSpan Elapsed)
{
    /// <summary>Small-sample warnings of either side (empty when both have N &gt; d).</summary>
    public IReadOnlyList<string> Warnings => Details.Warnings;
}

/// <summary>
/// Computes a Frechet distance for the CLI (`ect eval`) and the daemon: feature statistics of N generated images
/// (float64, streaming, features not kept) against reference statistics. Deterministic when the generator is:
/// images are consumed in order and the statistics are merged in batch order.
/// </summary>
public static class MetricRunner
{
    /// <summary>
    /// Generates <paramref name="numImages"/> images with <paramref name="generateBatch"/> (batch index 0, 1, ... ->
    /// images [B,C,H,W] in [-1,1]; any B &gt;= 1; a last batch that overshoots is cut), extracts features and returns
    /// FD(generated, reference). The runner disposes each generated batch after use.
    /// </summary>
    public static MetricResult Compute(
        Func<int, Tensor> generateBatch, int numImages, IFeatureExtractor extractor, FeatureStatistics reference,
        IProgress<MetricProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        CheckReference(extractor, reference);
        var sw = Stopwatch.StartNew();
        var generated = ComputeStatistics(Batches(generateBatch), numImages, extractor, "generated", progress, cancellationToken);
        var fd = FrechetDistance.Compute(generated, reference);
        return new MetricResult(extractor.Name, fd.Value, fd, generated, reference, sw.Elapsed);
    }

    static IEnumerable<Tensor> Batches(Func<int, Tensor> generateBatch)
    {
        for (var i = 0; ; i++) yield return generateBatch(i);
    }

    /// <summary>
    /// FD of <paramref name="batchCount"/> batches from <paramref name="generateBatch"/>, batch i + 1 generated on a
    /// thread of its own while batch i's features are extracted (<see cref="Overlapped"/>): the same images in the same
    /// order, so the same value, in less time where one phase alone leaves cores idle (`ect eval`: generation's small
    /// convolutions and ONNX Runtime's sequential stretches kept 1.78 of 2 cores busy, measured 2026-12-02).
    /// </summary>
    public static MetricResult ComputeOverlapped(
        Func<int, Tensor> generateBatch, int batchCount, int numImages, IFeatureExtractor extractor, FeatureStatistics reference,
        IProgress<MetricProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        CheckReference(extractor, reference);
        var sw = Stopwatch.StartNew();
        var generated = ComputeStatistics(Overlapped(generateBatch, batchCount, cancellationToken), numImages, extractor, "generated", progress, cancellationToken);
        var fd = FrechetDistance.Compute(generated, reference);
        return new MetricResult(extractor.Name, fd.Value, fd, generated, reference, sw.Elapsed);
    }

    /// <summary>
    /// Batches 0 .. <paramref name="batchCount"/> - 1 of <paramref name="generateBatch"/>, made on a producer thread (at
    /// the caller's torch thread count) at most one batch ahead of the consumer. Batches are made in order by one
    /// thread, so a generator that counts images or writes a grid sees the same calls as without the overlap. A
    /// failure of the generator is rethrown to the consumer; a consumer that stops early (enough images, or its own
    /// failure) stops the producer and disposes the batches it made.
    /// </summary>
    public static IEnumerable<Tensor> Overlapped(Func<int, Tensor> generateBatch, int batchCount, CancellationToken cancellationToken = default)
    {
        int threads = torch.get_num_threads();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var queue = new BlockingCollection<Tensor>(boundedCapacity: 1);
        Exception? failure = null;
        var producer = new Thread(() =>
        {
            torch.set_num_threads(threads);   // OpenMP's thread count is per calling thread
            try
            {
                for (int i = 0; i < batchCount && !stop.IsCancellationRequested; i++)
                {
                    var batch = generateBatch(i);
                    try { queue.Add(batch, stop.Token); }
                    catch (OperationCanceledException) { batch.Dispose(); throw; }
                }
            }
            catch (OperationCanceledException) { }
            catch (Exception e) { failure = e; }
            finally { queue.CompleteAdding(); }
        }) { IsBackground = true, Name = "ect-generate" };
        producer.Start();
        try
        {
            foreach (var batch in queue.GetConsumingEnumerable(cancellationToken)) yield return batch;
            if (failure is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        }
        finally
        {
            stop.Cancel();
            producer.Join();
            while (queue.TryTake(out var left)) left.Dispose();
        }
    }

    static void CheckReference(IFeatureExtractor extractor, FeatureStatistics reference)
    {
        ArgumentNullException.ThrowIfNull(reference);
        if (reference.Dimension != extractor.Dimension)
            throw new ArgumentException(
                $"Reference statistics have dimension {reference.Dimension} but the extractor {extractor.Name} gives {extractor.Dimension}: " +
                "the reference was computed with another extractor; recompute it.");
        if (reference.ExtractorName != "" && reference.ExtractorName != extractor.Name)
            throw new ArgumentException(
                $"Reference statistics were computed with '{reference.ExtractorName}', not '{extractor.Name}'; recompute them with {extractor.Name}.");
    }

    /// <summary>
    /// Feature statistics of the first <paramref name="numImages"/> images of <paramref name="batches"/> (each [B,C,H,W]
    /// in [-1,1]; disposed by this method after use). Fails with a clear message when the sequence ends early.
    /// </summary>
    public static FeatureStatistics ComputeStatistics(
        IEnumerable<Tensor> batches, int numImages, IFeatureExtractor extractor, string stage = "images",
        IProgress<MetricProgress>? progress = null, CancellationToken cancellationToken = default, string key = "")
    {
        ArgumentNullException.ThrowIfNull(extractor);
        if (numImages < 2)
            throw new ArgumentOutOfRangeException(nameof(numImages), numImages, "A Frechet distance needs at least 2 images (covariance divides by N-1).");
        using var acc = new FeatureStatisticsAccumulator(extractor.Dimension);
        long done = 0;
        var batchIndex = 0;
        progress?.Report(new MetricProgress(stage, 0, numImages));
        using var e = batches.GetEnumerator();
        while (done < numImages)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (!e.MoveNext())
                throw new InvalidOperationException(
                    $"{stage}: the image source ended after {done} images, but {numImages} were requested. Use fewer images or a larger dataset.");
            using var batch = e.Current;
            if (batch.dim() != 4 || batch.shape[0] == 0)
                throw new InvalidOperationException(
                    $"{stage}: batch {batchIndex} has shape [{string.Join(",", batch.shape)}]; expected [B,C,H,W] with B >= 1.");
            var take = Math.Min(batch.shape[0], numImages - done);
            using (var scope = NewDisposeScope())
            {
                var images = take == batch.shape[0] ? batch : batch.narrow(0, 0, take);
                var features = extractor.ExtractFeatures(images);
                acc.Add(features);
            }
            done += take;
            batchIndex++;
            progress?.Report(new MetricProgress(stage, done, numImages));
        }
        return acc.ToStatistics(extractor.Name, key);
    }
}
