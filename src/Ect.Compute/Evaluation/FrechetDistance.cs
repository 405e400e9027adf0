using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Compute.Evaluation;

/// <summary>The Frechet distance and its parts, all float64.</summary>
/// <param name="Value">FD = MeanTerm + TraceSigma1 + TraceSigma2 - 2 TraceCovMean.</param>
/// <param name="MeanTerm">|mu1 - mu2|^2.</param>
/// <param name="TraceCovMean">tr sqrt(S1 S2), from the eigenvalues of S1^(1/2) S2 S1^(1/2).</param>
/// <param name="MinEigenvalueSigma1">Smallest eigenvalue of S1 before clamping at 0 (negative: rounding in a rank-deficient S1).</param>
/// <param name="MinEigenvalueProduct">Smallest eigenvalue of S1^(1/2) S2 S1^(1/2) before clamping at 0.</param>
/// <param name="Warnings">Small-sample warnings of the inputs (empty when both have N &gt; d).</param>
public sealed record FrechetDistanceResult(
    double Value, double MeanTerm, double TraceSigma1, double TraceSigma2, double TraceCovMean,
    double MinEigenvalueSigma1, double MinEigenvalueProduct, IReadOnlyList<string> Warnings);

/// <summary>
/// Frechet distance between two Gaussians N(mu1, S1), N(mu2, S2):
/// FD = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), in float64.
/// <para>
/// Method ("fd_eig" in the golden data): S1 = V diag(w) V^T (symmetric eigendecomposition, torch.linalg.eigh in float64),
/// S1h = V diag(sqrt(max(w, 0))) V^T, and tr (S1 S2)^(1/2) = sum sqrt(max(eigvalsh(S1h S2 S1h), 0)), because S1 S2 is
/// similar to the symmetric positive semi-definite S1h S2 S1h. pytorch-fid instead takes scipy.linalg.sqrtm(S1 S2)
/// ("fd_sqrtm"): the two agree to ~2e-14 relative on full-rank covariances and ~6e-9 on rank-deficient ones (N &lt;= d),
/// where sqrtm returns a complex matrix whose real part pytorch-fid keeps. The eigen form needs no complex arithmetic,
/// no 1e-6*I retry, and never returns NaN for a semi-definite input.
/// </para>
/// </summary>
public static class FrechetDistance
{
    /// <summary>FD between two statistics of the same dimension (and, when both name one, the same extractor).</summary>
    public static FrechetDistanceResult Compute(FeatureStatistics a, FeatureStatistics b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.ExtractorName != "" && b.ExtractorName != "" && a.ExtractorName != b.ExtractorName)
            throw new ArgumentException(
                $"Cannot compare statistics of different feature extractors: '{a.ExtractorName}' vs '{b.ExtractorName}'. " +
                "Recompute the reference statistics with the same extractor.");
        var warnings = new List<string>();
        if (a.Warning is { } wa) warnings.Add(wa);
        if (b.Warning is { } wb && wb != a.Warning) warnings.Add(wb);
        return Compute(a.Mean, a.Covariance, b.Mean, b.Covariance, warnings);
    }

    /// <summary>FD from raw means (length d) and covariances (d*d row-major).</summary>
    public static FrechetDistanceResult Compute(double[] mu1, double[] sigma1, double[] mu2, double[] sigma2)
        => Compute(mu1, sigma1, mu2, sigma2, Array.Empty<string>());

    static FrechetDistanceResult Compute(double[] mu1, double[] sigma1, double[] mu2, double[] sigma2, IReadOnlyList<string> warnings)
    {
        var d = mu1.Length;
        if (mu2.Length != d)
            throw new ArgumentException($"Means have different dimensions: {d} vs {mu2.Length}.");
        if (sigma1.Length != (long)d * d || sigma2.Length != (long)d * d)
            throw new ArgumentException($"Covariances must be {d}x{d} ({(long)d * d} values); got {sigma1.Length} and {sigma2.Length}.");
        foreach (var (arr, name) in new[] { (mu1, "mu1"), (mu2, "mu2"), (sigma1, "sigma1"), (sigma2, "sigma2") })
            if (arr.Any(v => !double.IsFinite(v)))
                throw new ArgumentException($"{name} contains NaN or infinity: the features were not finite (check the images and the extractor).");

        double meanTerm = 0;
        for (var i = 0; i < d; i++) { var diff = mu1[i] - mu2[i]; meanTerm += diff * diff; }

        using var scope = NewDisposeScope();
        var s1 = tensor(sigma1, [d, d], ScalarType.Float64);
        var s2 = tensor(sigma2, [d, d], ScalarType.Float64);
        var tr1 = s1.trace().item<double>();
        var tr2 = s2.trace().item<double>();

        var (w, v) = linalg.eigh(s1);
        var minW = w.min().item<double>();
        var s1h = (v * w.clamp_min(ScalarConstants.Zero).sqrt().unsqueeze(0)).matmul(v.t());   // V diag(sqrt w) V^T
        var m = s1h.matmul(s2).matmul(s1h);
        m = m.Plus(m.t()).mul(ScalarConstants.Half);   // symmetric up to rounding; eigvalsh reads one triangle, make both agree
        var ev = linalg.eigvalsh(m);
        var minEv = ev.min().item<double>();
        var trCovMean = ev.clamp_min(ScalarConstants.Zero).sqrt().sum().item<double>();

        var fd = meanTerm + tr1 + tr2 - 2 * trCovMean;
        return new FrechetDistanceResult(fd, meanTerm, tr1, tr2, trCovMean, minW, minEv, warnings);
    }
}
