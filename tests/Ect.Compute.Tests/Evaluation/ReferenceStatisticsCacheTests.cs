using Ect.Compute.Evaluation;
using FluentAssertions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ect.Compute.Tests.Evaluation;

public class ReferenceStatisticsCacheTests : IDisposable
{
    readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("ect-refcache-");
    int _datasetReads;

    public ReferenceStatisticsCacheTests() => torch.set_num_threads(2);

    public void Dispose() => _dir.Delete(true);

    IEnumerable<Tensor> Dataset(int seed)
    {
        _datasetReads++;
        for (var i = 0; i < 10; i++)
        {
            using var g = new torch.Generator((ulong)(seed * 100 + i));
            using var r = torch.rand([8, 1, 8, 8], generator: g);
            using var scaled = r.Times(2);
            yield return scaled.Minus(1);
        }
    }

    [Fact]
    public void Second_call_reads_the_cache_and_a_changed_key_recomputes()
    {
        var cache = new ReferenceStatisticsCache(_dir.FullName);
        using var fx = new PoolingTestExtractor();

        var first = cache.GetOrCompute("sha256:aaaa", 64, fx, () => Dataset(1));
        first.FromCache.Should().BeFalse();
        File.Exists(first.CachePath).Should().BeTrue();
        Path.GetDirectoryName(first.CachePath).Should().Be(_dir.FullName);
        fx.Images.Should().Be(64);

        var second = cache.GetOrCompute("sha256:aaaa", 64, fx, () => Dataset(1));
        second.FromCache.Should().BeTrue();
        fx.Images.Should().Be(64, "no image was extracted on a cache hit");
        _datasetReads.Should().Be(1, "the dataset is not even enumerated on a hit");
        second.Statistics.Mean.Should().Equal(first.Statistics.Mean);
        second.Statistics.Covariance.Should().Equal(first.Statistics.Covariance);
        second.Statistics.ExtractorName.Should().Be("FD-Pool4");

        // A different dataset hash, image count or extractor is a different key: recompute, different file.
        var otherHash = cache.GetOrCompute("sha256:bbbb", 64, fx, () => Dataset(2));
        otherHash.FromCache.Should().BeFalse();
        otherHash.CachePath.Should().NotBe(first.CachePath);
        otherHash.Statistics.Mean.Should().NotEqual(first.Statistics.Mean);
        var otherCount = cache.GetOrCompute("sha256:aaaa", 40, fx, () => Dataset(1));
        otherCount.FromCache.Should().BeFalse();
        otherCount.Statistics.Count.Should().Be(40);
        using var fx2 = new PoolingTestExtractor("FD-Pool4b");
        cache.GetOrCompute("sha256:aaaa", 64, fx2, () => Dataset(1)).FromCache.Should().BeFalse();
        fx2.Images.Should().Be(64);
        _datasetReads.Should().Be(4);
    }

    [Fact]
    public void A_corrupt_or_foreign_cache_file_is_recomputed_and_replaced()
    {
        var cache = new ReferenceStatisticsCache(_dir.FullName);
        using var fx = new PoolingTestExtractor();
        var path = cache.PathFor("h1", 32, fx);
        File.WriteAllText(path, "garbage");
        var r = cache.GetOrCompute("h1", 32, fx, () => Dataset(3));
        r.FromCache.Should().BeFalse();
        FeatureStatistics.Load(path).Key.Should().Be(ReferenceStatisticsCache.Key("h1", 32, fx));

        // A valid file under this name whose stored key differs (e.g. copied by hand) is not trusted.
        new FeatureStatistics(r.Statistics.Mean, r.Statistics.Covariance, 32, fx.Name, "dataset=other").Save(path);
        cache.GetOrCompute("h1", 32, fx, () => Dataset(3)).FromCache.Should().BeFalse();
        cache.GetOrCompute("h1", 32, fx, () => Dataset(3)).FromCache.Should().BeTrue();
    }
}
