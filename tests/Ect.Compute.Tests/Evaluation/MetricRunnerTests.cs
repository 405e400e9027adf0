using Ect.Compute.Evaluation;
using FluentAssertions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ect.Compute.Tests.Evaluation;

/// <summary>
/// A cheap deterministic extractor for the runner and cache tests: 4x4 average-pooled grey image (16-d), counting calls
/// and images. (The real extractors are tested on their own; here the bookkeeping is under test.)
/// </summary>
internal sealed class PoolingTestExtractor(string name = "FD-Pool4") : IFeatureExtractor
{
    public int Calls { get; private set; }
    public long Images { get; private set; }
    public string Name => name;
    public int Dimension => 16;

    public Tensor ExtractFeatures(Tensor images)
    {
        Calls++;
        Images += images.shape[0];
        using var scope = NewDisposeScope();
        var grey = EvaluationImages.ToRgbFloat32(images, Name).mean([1L], keepdim: true);
        return torch.nn.functional.adaptive_avg_pool2d(grey, [4L, 4L]).flatten(1).MoveToOuterDisposeScope();
    }

    public void Dispose() { }
}

public class MetricRunnerTests
{
    public MetricRunnerTests() => torch.set_num_threads(2);

    static Tensor Batch(int index, int size, int seed)
    {
        var g = new torch.Generator((ulong)(seed * 1000 + index));
        using var r = torch.rand([size, 1, 8, 8], generator: g);
        using var scaled = r.Times(2);
        return scaled.Minus(1);
    }

    [Fact]
    public void Generated_statistics_take_exactly_N_images_in_order_and_report_progress()
    {
        using var fx = new PoolingTestExtractor();
        var reports = new List<MetricProgress>();
        var progress = new SynchronousProgress<MetricProgress>(reports.Add);
        var stats = MetricRunner.ComputeStatistics(Enumerable.Range(0, 100).Select(i => Batch(i, 4, 1)), 10, fx, "generated", progress);
        stats.Count.Should().Be(10);
        fx.Images.Should().Be(10, "the third batch of 4 is cut to 2 images");
        reports.Select(r => r.Done).Should().Equal(0, 4, 8, 10);
        reports.Should().OnlyContain(r => r.Total == 10 && r.Stage == "generated");

        // Same numbers as the 10 images in one batch.
        using var all = torch.cat([Batch(0, 4, 1), Batch(1, 4, 1), Batch(2, 4, 1)[..2]], 0);
        var direct = MetricRunner.ComputeStatistics([all.alias()], 10, new PoolingTestExtractor());
        for (var i = 0; i < stats.Covariance.Length; i++)
            stats.Covariance[i].Should().BeApproximately(direct.Covariance[i], 1e-14);
    }

    [Fact]
    public void Frechet_distance_is_deterministic_and_separates_shifted_images()
    {
        using var fx = new PoolingTestExtractor();
        var reference = MetricRunner.ComputeStatistics(Enumerable.Range(0, 20).Select(i => Batch(i, 8, 7)), 160, fx);
        var r1 = MetricRunner.Compute(i => Batch(i, 8, 8), 160, fx, reference);
        var r2 = MetricRunner.Compute(i => Batch(i, 8, 8), 160, fx, reference);
        r1.Value.Should().Be(r2.Value, "same generator, same bits");
        r1.MetricName.Should().Be("FD-Pool4");
        r1.Generated.Count.Should().Be(160);
        r1.Warnings.Should().BeEmpty();
        var shifted = MetricRunner.Compute(i => { using var b = Batch(i, 8, 8); using var half = b.Times(0.5); return half.Plus(0.4); }, 160, fx, reference);
        shifted.Value.Should().BeGreaterThan(10 * r1.Value, "brighter, lower-contrast images are far from the reference");
    }

    [Fact]
    public void Mismatched_reference_short_sources_and_tiny_N_get_clear_errors()
    {
        using var fx = new PoolingTestExtractor();
        var reference = MetricRunner.ComputeStatistics(Enumerable.Range(0, 4).Select(i => Batch(i, 8, 7)), 32, fx);
        reference.Warning.Should().BeNull();
        using var other = new PoolingTestExtractor("FD-Other");
        var act = () => MetricRunner.Compute(i => Batch(i, 8, 8), 16, other, reference);
        act.Should().Throw<ArgumentException>().WithMessage("*'FD-Pool4'*FD-Other*");
        var shortSource = () => MetricRunner.ComputeStatistics(Enumerable.Range(0, 2).Select(i => Batch(i, 4, 1)), 10, fx, "reference");
        shortSource.Should().Throw<InvalidOperationException>().WithMessage("*reference*ended after 8 images*10*");
        var tiny = () => MetricRunner.ComputeStatistics([Batch(0, 4, 1)], 1, fx);
        tiny.Should().Throw<ArgumentOutOfRangeException>();
        var small = MetricRunner.ComputeStatistics([Batch(0, 12, 1)], 12, fx);
        small.Warning.Should().Contain("12 feature vectors for dimension 16");
    }

    [Fact]
    public void Cancellation_stops_between_batches()
    {
        using var fx = new PoolingTestExtractor();
        using var cts = new CancellationTokenSource();
        var act = () => MetricRunner.Compute(i => { if (i == 2) cts.Cancel(); return Batch(i, 4, 1); }, 100, fx,
            MetricRunner.ComputeStatistics([Batch(0, 40, 3)], 40, fx), cancellationToken: cts.Token);
        act.Should().Throw<OperationCanceledException>();
    }

    /// <summary>Issue 21 point 4 (`ect eval` under 3 minutes): batch i + 1 generated on another thread while batch i is
    /// extracted gives the same value as generating in turn, calls the generator in order from one thread at the
    /// caller's torch thread count, makes no batch beyond the count, and rethrows the generator's failure.</summary>
    [Fact]
    public void Overlapped_generation_gives_the_value_of_generation_in_turn_and_stops_and_fails_cleanly()
    {
        using var fx = new PoolingTestExtractor();
        var reference = MetricRunner.ComputeStatistics(Enumerable.Range(0, 20).Select(i => Batch(i, 8, 7)), 160, fx);
        var inTurn = MetricRunner.Compute(i => Batch(i, 8, 8), 150, fx, reference);
        var calls = new List<(int Index, int Thread, int TorchThreads)>();
        torch.set_num_threads(1);
        try
        {
            var overlapped = MetricRunner.ComputeOverlapped(i =>
            {
                lock (calls) calls.Add((i, Environment.CurrentManagedThreadId, torch.get_num_threads()));
                return Batch(i, 8, 8);
            }, 19, 150, fx, reference);
            overlapped.Value.Should().Be(inTurn.Value, "the same images in the same order: the same bits");
        }
        finally { torch.set_num_threads(2); }
        calls.Select(c => c.Index).Should().Equal(Enumerable.Range(0, 19), "each batch once, in order, none beyond the count");
        calls.Select(c => c.Thread).Distinct().Should().ContainSingle().Which.Should().NotBe(Environment.CurrentManagedThreadId,
            "one producer thread, not the caller's");
        calls.Should().OnlyContain(c => c.TorchThreads == 1, "the producer runs at the caller's torch thread count");

        var failing = () => MetricRunner.ComputeOverlapped(i => i == 3 ? throw new InvalidDataException("batch 3 broke") : Batch(i, 8, 8), 19, 150, fx, reference);
        failing.Should().Throw<InvalidDataException>().WithMessage("batch 3 broke");
        var tooFew = () => MetricRunner.ComputeOverlapped(i => Batch(i, 8, 8), 2, 150, fx, reference);
        tooFew.Should().Throw<InvalidOperationException>().WithMessage("*ended after 16 images*");
    }
}

/// <summary>IProgress that reports on the calling thread (Progress&lt;T&gt; posts to the thread pool).</summary>
internal sealed class SynchronousProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
