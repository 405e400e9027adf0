using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Compute.Evaluation;

/// <summary>
/// Streaming float64 mean and covariance of feature vectors, one batch at a time, without keeping the features.
/// Each batch's own mean and centred scatter matrix are merged with Chan et al.'s pairwise update
/// (M2 = M2_a + M2_b + delta delta^T n_a n_b / n), which avoids the cancellation of the "sum of outer products minus
/// N mu mu^T" form when the mean is large compared with the spread. Deterministic for a fixed batch split and thread
/// count; different splits agree to rounding (~1e-15 relative).
/// </summary>
public sealed class FeatureStatisticsAccumulator : IDisposable
{
    Tensor _mean;   // [d] float64
    Tensor _m2;     // [d,d] float64, sum of centred outer products
    long _count;

    public FeatureStatisticsAccumulator(int dimension)
    {
        if (dimension <= 0) throw new ArgumentOutOfRangeException(nameof(dimension), dimension, "Feature dimension must be positive.");
        Dimension = dimension;
        // The running state belongs to the accumulator, not to whatever dispose scope the caller has open.
        _mean = zeros(dimension, dtype: ScalarType.Float64).DetachFromDisposeScope();
        _m2 = zeros(dimension, dimension, dtype: ScalarType.Float64).DetachFromDisposeScope();
    }

    public int Dimension { get; }

    /// <summary>Number of feature vectors added so far.</summary>
    public long Count => _count;

    /// <summary>Adds a batch of features [B, d] (any floating dtype; converted to float64). Does not dispose it.</summary>
    public void Add(Tensor features)
    {
        if (features.dim() != 2 || features.shape[1] != Dimension)
            throw new ArgumentException(
                $"Features must be [B, {Dimension}]; got [{string.Join(",", features.shape)}].", nameof(features));
        var nb = features.shape[0];
        if (nb == 0) return;
        // Deviation from plain TorchSharp style: no operator with an implicit Scalar (t * 0.5, and a + b / a - b, whose
        // alpha 1 TorchSharp creates itself). TorchSharp 0.107 leaves those Scalars to the GC finalizer without keeping
        // them alive through the native call, so a collection triggered by another thread (the daemon's trainer) can
        // free one while libtorch still reads it: "Expected false to be true" from c10::Scalar::toDouble, or a garbage
        // factor and so non-finite statistics (issue 17: the in-run "mu1 contains NaN"). These Scalars are ours, alive
        // until the end of the method.
        using var scope = NewDisposeScope();
        var n = _count + nb;
        using var one = 1.0.ToScalar();
        using var minusOne = (-1.0).ToScalar();
        using var meanWeight = ((double)nb / n).ToScalar();
        using var m2Weight = ((double)_count * nb / n).ToScalar();
        var x = features.to(ScalarType.Float64, CPU);
        var meanB = x.mean([0L]);
        var xc = x.add(meanB, minusOne);
        var m2B = xc.t().matmul(xc);
        var delta = meanB.add(_mean, minusOne);
        var newMean = _mean.add(delta.mul(meanWeight), one);
        var newM2 = _m2.add(m2B, one).add(delta.outer(delta).mul(m2Weight), one);
        _mean.Dispose();
        _m2.Dispose();
        _mean = newMean.DetachFromDisposeScope();
        _m2 = newM2.DetachFromDisposeScope();
        _count = n;
    }

    /// <summary>Adds B feature vectors stored row-major in <paramref name="features"/> (length B*d).</summary>
    public void Add(float[] features)
    {
        if (features.Length % Dimension != 0)
            throw new ArgumentException($"Feature array length {features.Length} is not a multiple of the dimension {Dimension}.", nameof(features));
        using var t = tensor(features, [features.Length / Dimension, Dimension]);
        Add(t);
    }

    /// <summary>The statistics so far (mean, covariance / (N-1)). Needs N &gt;= 2.</summary>
    public FeatureStatistics ToStatistics(string extractorName = "", string key = "")
    {
        if (_count < 2)
            throw new InvalidOperationException($"Feature statistics need at least 2 feature vectors; got {_count}.");
        using var scope = NewDisposeScope();
        // Symmetrise: the merge keeps M2 symmetric up to rounding; make it exactly symmetric for eigh and for files.
        using var one = 1.0.ToScalar(); // explicit Scalars: see Add
        using var half = (0.5 / (_count - 1)).ToScalar();
        var cov = _m2.add(_m2.t(), one).mul(half);
        return new FeatureStatistics(_mean.data<double>().ToArray(), cov.contiguous().data<double>().ToArray(), _count, extractorName, key);
    }

    public void Dispose()
    {
        _mean.Dispose();
        _m2.Dispose();
    }
}
