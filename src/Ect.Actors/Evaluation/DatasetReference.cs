using System.Security.Cryptography;
using Ect.Compute.Evaluation;
using Ect.Data;
using Ect.Data.Sources;
using static TorchSharp.torch;

namespace Ect.Actors.Evaluation;

/// <summary>Reference statistics of a dataset and how many images they cover.</summary>
public sealed record DatasetReferenceResult(ReferenceStatisticsResult Reference, int Images)
{
    public FeatureStatistics Statistics => Reference.Statistics;
}

/// <summary>
/// A dataset's reference feature statistics, shared by `ect eval` and the daemon's fd-resnet18 evaluator so that both
/// see the same images the same way: the first K images (0 = all) in order, no flips, no labels, padded/resized to the
/// generator's resolution as for training (BatchAssembler), cached by <see cref="ReferenceStatisticsCache"/> under a
/// SHA-256 of the images' bytes and the resolution. Eval and daemon therefore share cache files for the same dataset,
/// K and resolution.
/// </summary>
public static class DatasetReference
{
    /// <summary>~/.cache/ect/stats: the cache folder when none is configured (`ect eval --cache-dir`, evaluator cache-dir).</summary>
    public static string DefaultCacheDirectory =>
        Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "ect", "stats");

    /// <param name="dataPath">Anything DatasetSource.Load accepts.</param>
    /// <param name="referenceImages">The first K images (0 = all).</param>
    /// <param name="channels">Channels of the generated images; the dataset must have as many.</param>
    /// <param name="resolution">Resolution of the generated images; dataset images are brought to it.</param>
    /// <param name="consumer">Names the generator in the channel-mismatch error, e.g. "the network of 'ck.safetensors'".</param>
    /// <param name="fix">What to do about a channel mismatch, appended to that error.</param>
    public static DatasetReferenceResult Compute(
        string dataPath, int referenceImages, int channels, int resolution, IFeatureExtractor extractor, string cacheDirectory,
        int batchSize, string consumer, string fix, IProgress<MetricProgress>? progress = null, CancellationToken ct = default)
    {
        using var data = DatasetSource.Load(dataPath, referenceImages > 0 ? referenceImages : null);
        if (data.Channels != channels)
            throw new InvalidDataException($"dataset '{dataPath}' has {data.Channels} channel(s) but {consumer} takes {channels}: {fix}");
        var count = data.Count;
        if (count < 2) throw new InvalidDataException($"dataset '{dataPath}' has {count} image(s); reference statistics need at least 2.");
        var hash = ContentHash(data, resolution);
        Directory.CreateDirectory(cacheDirectory);
        var cache = new ReferenceStatisticsCache(cacheDirectory);
        var reference = cache.GetOrCompute(hash, count, extractor, () => DatasetBatches(data, resolution, batchSize), progress, ct);
        return new DatasetReferenceResult(reference, count);
    }

    /// <summary>The dataset in order, no flips, no labels, padded/resized to the network's resolution as for training.</summary>
    static IEnumerable<Tensor> DatasetBatches(ImageDataset data, int resolution, int batchSize)
    {
        var assembler = new BatchAssembler(data, Math.Min(batchSize, data.Count), 0,
            new BatchOptions { Resolution = resolution, XFlip = false, UseLabels = false, Shuffle = false });
        while (true)
        {
            var b = assembler.Next();
            b.Labels?.Dispose();
            yield return b.Images;
        }
    }

    /// <summary>SHA-256 of the images' bytes, their shape and the resolution they are brought to (keys the cache).</summary>
    static string ContentHash(ImageDataset data, int resolution)
    {
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        h.AppendData(System.Text.Encoding.UTF8.GetBytes($"{data.Count}x{data.Channels}x{data.Height}x{data.Width}->{resolution};"));
        for (var i = 0; i < data.Count; i++) h.AppendData(data.GetImage(i));
        return Convert.ToHexString(h.GetHashAndReset()).ToLowerInvariant();
    }
}
