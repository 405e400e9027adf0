using System.Security.Cryptography;
using System.Text;
using static TorchSharp.torch;

namespace Ect.Compute.Evaluation;

/// <summary>Reference statistics and where they came from.</summary>
public sealed record ReferenceStatisticsResult(FeatureStatistics Statistics, bool FromCache, string CachePath);

/// <summary>
/// Computes a dataset's reference feature statistics once and keeps them in a cache folder (usually beside the
/// dataset) as <c>.ectstats</c> files. The key is (dataset content hash, extractor name, extractor dimension, image
/// count); the file name carries a digest of the key and the header stores the full key, so a changed dataset,
/// extractor or count recomputes instead of reusing stale numbers. An unreadable cache file is recomputed and replaced.
/// Takes the dataset as image batches plus a content-hash string, so it does not depend on Ect.Data.
/// </summary>
public sealed class ReferenceStatisticsCache
{
    public ReferenceStatisticsCache(string cacheDirectory)
    {
        if (string.IsNullOrWhiteSpace(cacheDirectory))
            throw new ArgumentException("The reference statistics cache needs a folder.", nameof(cacheDirectory));
        CacheDirectory = cacheDirectory;
    }

    public string CacheDirectory { get; }

    /// <summary>The key string stored in the file header.</summary>
    public static string Key(string contentHash, int imageCount, IFeatureExtractor extractor) =>
        $"dataset={contentHash};extractor={extractor.Name};dim={extractor.Dimension};images={imageCount}";

    /// <summary>Path of the cache file for this key.</summary>
    public string PathFor(string contentHash, int imageCount, IFeatureExtractor extractor)
    {
        var key = Key(contentHash, imageCount, extractor);
        var digest = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(key)))[..16].ToLowerInvariant();
        var safeName = new string(extractor.Name.Select(c => char.IsAsciiLetterOrDigit(c) || c == '-' ? c : '_').ToArray());
        return Path.Combine(CacheDirectory, $"refstats-{safeName}-n{imageCount}-{digest}.ectstats");
    }

    /// <summary>
    /// Returns the cached statistics for the key, or computes them from the first <paramref name="imageCount"/> images of
    /// <paramref name="batches"/> (called only on a miss; each batch [B,C,H,W] in [-1,1], disposed after use) and saves them.
    /// </summary>
    public ReferenceStatisticsResult GetOrCompute(
        string contentHash, int imageCount, IFeatureExtractor extractor, Func<IEnumerable<Tensor>> batches,
        IProgress<MetricProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        if (string.IsNullOrWhiteSpace(contentHash))
            throw new ArgumentException("The dataset content hash must not be empty (it keys the cache).", nameof(contentHash));
        var key = Key(contentHash, imageCount, extractor);
        var path = PathFor(contentHash, imageCount, extractor);
        if (TryLoad(path, key) is { } cached)
            return new ReferenceStatisticsResult(cached, true, path);

        var stats = MetricRunner.ComputeStatistics(batches(), imageCount, extractor, "reference", progress, cancellationToken, key);
        stats.Save(path);
        return new ReferenceStatisticsResult(stats, false, path);
    }

    static FeatureStatistics? TryLoad(string path, string key)
    {
        if (!File.Exists(path)) return null;
        try
        {
            var s = FeatureStatistics.Load(path);
            return s.Key == key ? s : null;
        }
        catch (InvalidDataException)
        {
            return null;   // corrupt or truncated (e.g. a crash in an old version): recompute and overwrite
        }
    }
}
