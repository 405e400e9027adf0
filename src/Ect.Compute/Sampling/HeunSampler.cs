using Ect.Compute.Preconditioning;
using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Compute.Sampling;

/// <summary>Settings of EDM's stochastic/deterministic Heun sampler (generate.py edm_sampler defaults).</summary>
public sealed record HeunSamplerConfig(
    int NumSteps = 18,
    double SigmaMin = 0.002,
    double SigmaMax = 80,
    double Rho = 7,
    double SChurn = 0,
    double SMin = 0,
    double SMax = double.PositiveInfinity,
    double SNoise = 1);

/// <summary>
/// EDM's Heun sampler (NVlabs/edm generate.py edm_sampler): t_i = (smax^(1/rho) + i/(N-1)(smin^(1/rho) - smax^(1/rho)))^rho,
/// t_N = 0, float64 between network calls, 2N-1 network evaluations (35 for N = 18). With S_churn = 0 it is
/// deterministic. Deviation: the reference also clamps sigma_min/max to the network's own range
/// (net.sigma_min/sigma_max); our Precond exposes none, EDMPrecond's are 0 and inf, so the clamp is a no-op there.
/// </summary>
public static class HeunSampler
{
    /// <summary>The time steps t_0..t_{N-1} followed by t_N = 0 (float64).</summary>
    public static double[] TimeSteps(HeunSamplerConfig c)
    {
        if (c.NumSteps < 2) throw new ArgumentOutOfRangeException(nameof(c), c.NumSteps, "NumSteps must be >= 2.");
        var t = new double[c.NumSteps + 1];
        double a = Math.Pow(c.SigmaMax, 1 / c.Rho), b = Math.Pow(c.SigmaMin, 1 / c.Rho);
        for (int i = 0; i < c.NumSteps; i++)
            t[i] = Math.Pow(a + i / (double)(c.NumSteps - 1) * (b - a), c.Rho);
        t[c.NumSteps] = 0;
        return t;
    }

    /// <summary>Samples; churn noise comes from <paramref name="generator"/> (or the global RNG). Returns float64.</summary>
    public static Tensor Sample(Precond net, Tensor latents, HeunSamplerConfig? config = null, Tensor? classLabels = null, Generator? generator = null)
        => Sample(net, latents, config ?? new HeunSamplerConfig(), classLabels,
            like => randn(like.shape, dtype: float64, device: like.device, generator: generator));

    /// <summary>Samples with the churn noise given by <paramref name="randnLike"/> (as edm_sampler's randn_like).</summary>
    public static Tensor Sample(Precond net, Tensor latents, HeunSamplerConfig config, Tensor? classLabels, Func<Tensor, Tensor> randnLike)
    {
        var tSteps = TimeSteps(config);
        int n = config.NumSteps;
        bool wasTraining = net.training;
        net.eval();
        try
        {
            using var noGrad = no_grad();
            using var outer = NewDisposeScope();
            var xNext = latents.to(float64) * tSteps[0];
            for (int i = 0; i < n; i++)
            {
                using var scope = NewDisposeScope();
                double tCur = tSteps[i], tNext = tSteps[i + 1];
                var xCur = xNext;
                double gamma = config.SMin <= tCur && tCur <= config.SMax ? Math.Min(config.SChurn / n, Math.Sqrt(2) - 1) : 0;
                double tHat = tCur + gamma * tCur;
                // The reference always draws the churn noise (scaled by 0 when gamma = 0); skip the draw then,
                // which leaves the result unchanged and saves an image-sized randn per step.
                var xHat = gamma > 0
                    ? xCur + Math.Sqrt(tHat * tHat - tCur * tCur) * config.SNoise * randnLike(xCur).to(float64)
                    : xCur;
                var denoised = net.call(xHat, tensor(tHat, dtype: float64), classLabels).to(float64);
                var dCur = (xHat - denoised) / tHat;
                xNext = xHat + (tNext - tHat) * dCur;
                if (i < n - 1)
                {
                    denoised = net.call(xNext, tensor(tNext, dtype: float64), classLabels).to(float64);
                    var dPrime = (xNext - denoised) / tNext;
                    xNext = xHat + (tNext - tHat) * (0.5 * dCur + 0.5 * dPrime);
                }
                xNext = xNext.MoveToOuterDisposeScope();
            }
            return xNext.MoveToOuterDisposeScope();
        }
        finally
        {
            net.train(wasTraining);
        }
    }
}
