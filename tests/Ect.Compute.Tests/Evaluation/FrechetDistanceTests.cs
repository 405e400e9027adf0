using Ect.Compute.Evaluation;
using FluentAssertions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ect.Compute.Tests.Evaluation;

/// <summary>FrechetDistance and FeatureStatistics against tests/golden/fid-inception (fd/*, meta.json "fd").</summary>
public class FrechetDistanceTests
{
    static readonly GoldenFolder Golden = new(EvalTestPaths.FidInception);

    public FrechetDistanceTests() => torch.set_num_threads(2);

    static FeatureStatistics Accumulate(string name, params int[] batchSizes)
    {
        var x = Golden.ReadFloat(name);
        var shape = Golden.Shape(name);
        var (n, d) = ((int)shape[0], (int)shape[1]);
        using var acc = new FeatureStatisticsAccumulator(d);
        var row = 0;
        var b = 0;
        while (row < n)
        {
            var size = Math.Min(batchSizes[b++ % batchSizes.Length], n - row);
            acc.Add(x.AsSpan(row * d, size * d).ToArray());
            row += size;
        }
        return acc.ToStatistics("test");
    }

    static void ShouldBeClose(double[] actual, double[] expected, double tol, string what)
    {
        actual.Length.Should().Be(expected.Length, what);
        var scale = expected.Max(Math.Abs);
        for (var i = 0; i < actual.Length; i++)
            Math.Abs(actual[i] - expected[i]).Should().BeLessThanOrEqualTo(tol * scale, $"{what}[{i}]");
    }

    [Fact]
    public void Streaming_mean_and_unbiased_covariance_match_numpy_in_uneven_batches()
    {
        var a = Accumulate("fd/features_a", 7, 64, 1, 100);
        a.Count.Should().Be(500);
        a.Dimension.Should().Be(64);
        ShouldBeClose(a.Mean, Golden.ReadAsDouble("fd/mu_a"), 1e-13, "mu_a");
        ShouldBeClose(a.Covariance, Golden.ReadAsDouble("fd/sigma_a"), 1e-13, "sigma_a");
        var b = Accumulate("fd/features_b", 500);
        ShouldBeClose(b.Mean, Golden.ReadAsDouble("fd/mu_b"), 1e-13, "mu_b");
        ShouldBeClose(b.Covariance, Golden.ReadAsDouble("fd/sigma_b"), 1e-13, "sigma_b");
        a.Warning.Should().BeNull("500 samples > 64 dimensions");
    }

    [Fact]
    public void Covariance_stays_accurate_when_the_mean_dwarfs_the_spread()
    {
        // Shifting every feature by 1e4 must not change the covariance: the naive sum-of-outer-products form
        // loses ~8 digits here, the pairwise merge does not.
        var x = Golden.ReadFloat("fd/features_a").Select(v => (double)v + 1e4).ToArray();
        using var acc = new FeatureStatisticsAccumulator(64);
        for (var r = 0; r < 500; r += 50)
        {
            using var t = torch.tensor(x.AsSpan(r * 64, 50 * 64).ToArray(), [50L, 64L], ScalarType.Float64);
            acc.Add(t);
        }
        var s = acc.ToStatistics();
        ShouldBeClose(s.Covariance, Golden.ReadAsDouble("fd/sigma_a"), 1e-9, "shifted sigma_a");
    }

    [Fact]
    public void Accumulator_state_survives_the_callers_dispose_scopes()
    {
        var x = Golden.ReadFloat("fd/features_a");
        using var acc = new FeatureStatisticsAccumulator(64);
        for (var r = 0; r < 500; r += 100)
        {
            using var scope = torch.NewDisposeScope();   // as in a per-batch loop
            acc.Add(torch.tensor(x.AsSpan(r * 64, 100 * 64).ToArray(), [100L, 64L]));
        }
        var s = acc.ToStatistics();
        ShouldBeClose(s.Mean, Golden.ReadAsDouble("fd/mu_a"), 1e-13, "mu_a");
    }

    [Fact]
    public void Frechet_distance_A_vs_B_matches_golden_eig_and_sqrtm()
    {
        var fd = Golden.Meta.GetProperty("fd");
        var r = FrechetDistance.Compute(
            Golden.ReadAsDouble("fd/mu_a"), Golden.ReadAsDouble("fd/sigma_a"),
            Golden.ReadAsDouble("fd/mu_b"), Golden.ReadAsDouble("fd/sigma_b"));
        r.Value.Should().BeApproximately(fd.GetProperty("fd_eig").GetDouble(), 1e-12 * 38.5);
        r.Value.Should().BeApproximately(fd.GetProperty("fd_sqrtm").GetDouble(), 1e-12 * 38.5);
        r.MeanTerm.Should().BeApproximately(fd.GetProperty("mean_term").GetDouble(), 1e-12);
        r.TraceSigma1.Should().BeApproximately(fd.GetProperty("trace_sigma_a").GetDouble(), 1e-12);
        r.TraceSigma2.Should().BeApproximately(fd.GetProperty("trace_sigma_b").GetDouble(), 1e-12);
        r.TraceCovMean.Should().BeApproximately(fd.GetProperty("eig_info").GetProperty("tr_covmean").GetDouble(), 1e-11);
        r.MinEigenvalueSigma1.Should().BeApproximately(
            fd.GetProperty("eig_info").GetProperty("min_eig_sigma1").GetDouble(), 1e-12);
    }

    [Fact]
    public void Frechet_distance_from_streamed_statistics_matches_golden_and_is_zero_for_identical_sets()
    {
        var a = Accumulate("fd/features_a", 33);
        var b = Accumulate("fd/features_b", 128);
        FrechetDistance.Compute(a, b).Value.Should().BeApproximately(38.510103564147755, 1e-10 * 38.5);
        FrechetDistance.Compute(b, a).Value.Should().BeApproximately(38.510103564147755, 1e-10 * 38.5, "FD is symmetric");
        Math.Abs(FrechetDistance.Compute(a, a).Value).Should().BeLessThan(1e-9);
    }

    [Fact]
    public void Rank_deficient_case_matches_golden_and_warns()
    {
        var fd = Golden.Meta.GetProperty("fd_rank_deficient");
        var c = Accumulate("fd/features_c", 16);
        var d = Accumulate("fd/features_d", 40);
        c.IsRankDeficient.Should().BeTrue();
        c.Warning.Should().Contain("40 feature vectors for dimension 64").And.Contain("rank-deficient");
        var r = FrechetDistance.Compute(c, d);
        r.Warnings.Should().HaveCount(1);
        r.MinEigenvalueSigma1.Should().BeLessThan(1e-10, "S_c has rank 39 < 64");
        r.Value.Should().BeApproximately(fd.GetProperty("fd_eig").GetDouble(), 1e-9 * 66.3);
        // pytorch-fid's sqrtm differs by 5.9e-9 relative here (README); we implement the eigen form.
        r.Value.Should().BeApproximately(fd.GetProperty("fd_sqrtm").GetDouble(), 2e-8 * 66.3);
    }

    [Fact]
    public void Statistics_file_round_trips_bitwise_and_rejects_truncation()
    {
        var a = Accumulate("fd/features_a", 500);
        var dir = Directory.CreateTempSubdirectory("ect-stats-");
        try
        {
            var path = Path.Combine(dir.FullName, "a.ectstats");
            new FeatureStatistics(a.Mean, a.Covariance, a.Count, "FD-Test", "k=1").Save(path);
            var back = FeatureStatistics.Load(path);
            back.Mean.Should().Equal(a.Mean);
            back.Covariance.Should().Equal(a.Covariance);
            back.Count.Should().Be(500);
            back.ExtractorName.Should().Be("FD-Test");
            back.Key.Should().Be("k=1");

            var bytes = File.ReadAllBytes(path);
            File.WriteAllBytes(path, bytes[..^8]);
            var act = () => FeatureStatistics.Load(path);
            act.Should().Throw<InvalidDataException>().WithMessage("*truncated*");
            File.WriteAllText(path, "not a statistics file");
            act.Should().Throw<InvalidDataException>().WithMessage("*ECTSTAT1*");

            // A header claiming an absurd dimension is refused as such before its size is computed: at ~1.5e9 the
            // byte count 8 * (d + d^2) wraps around 2^64 and could match a file's length.
            var header = System.Text.Encoding.UTF8.GetBytes("{\"format\":\"ect-feature-statistics\",\"version\":1,\"dimension\":1518500250,\"count\":9,\"dtype\":\"float64\",\"byte_order\":\"little\"}");
            var hostile = new byte[16 + header.Length + 64];
            System.Text.Encoding.ASCII.GetBytes(FeatureStatistics.Magic).CopyTo(hostile, 0);
            System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(hostile.AsSpan(8), header.Length);
            header.CopyTo(hostile, 16);
            File.WriteAllBytes(path, hostile);
            act.Should().Throw<InvalidDataException>().WithMessage("*bad dimension 1518500250*");
        }
        finally { dir.Delete(true); }
    }

    [Fact]
    public void Statistics_of_different_extractors_or_dimensions_are_refused()
    {
        var a = Accumulate("fd/features_a", 500);
        var other = new FeatureStatistics(a.Mean, a.Covariance, a.Count, "FD-ResNet18");
        var mine = new FeatureStatistics(a.Mean, a.Covariance, a.Count, "FID-InceptionV3");
        var act = () => FrechetDistance.Compute(mine, other);
        act.Should().Throw<ArgumentException>().WithMessage("*FID-InceptionV3*FD-ResNet18*");
        var small = () => FrechetDistance.Compute(a.Mean, a.Covariance, a.Mean[..10], a.Covariance[..100]);
        small.Should().Throw<ArgumentException>().WithMessage("*64 vs 10*");
    }
}
