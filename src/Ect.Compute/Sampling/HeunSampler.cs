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
/// EDM's Heun sampler (NVlabs/edm generate.py edm_sampler): sigma_min/max clamped to the network's own range
/// (net.sigma_min/sigma_max), t_i = (smax^(1/rho) + i/(N-1)(smin^(1/rho) - smax^(1/rho)))^rho rounded by
/// net.round_sigma, t_N = 0, float64 between network calls, 2N-1 network evaluations (35 for N = 18). With
/// S_churn = 0 it is deterministic. <see cref="Sample"/> runs the whole chain; <see cref="Step"/> is one step of it,
/// for callers that drive the chain themselves (as EDM's sampler is used step by step in practice).
/// </summary>
public static class HeunSampler
{
    /// <summary>The time steps t_0..t_{N-1} followed by t_N = 0 (float64), without a network's range.</summary>
    public static double[] TimeSteps(HeunSamplerConfig c) => TimeSteps(c, null);

    /// <summary>The time steps for <paramref name="net"/>: its sigma range clamps the config's, its round_sigma rounds them.</summary>
    public static double[] TimeSteps(HeunSamplerConfig c, Precond? net)
    {
        if (c.NumSteps < 2) throw new ArgumentOutOfRangeException(nameof(c), c.NumSteps, "NumSteps must be >= 2.");
        double sigmaMin = Math.Max(c.SigmaMin, net?.SigmaMin ?? 0);
        double sigmaMax = Math.Min(c.SigmaMax, net?.SigmaMax ?? double.PositiveInfinity);
        var t = new double[c.NumSteps + 1];
        double a = Math.Pow(sigmaMax, 1 / c.Rho), b = Math.Pow(sigmaMin, 1 / c.Rho);
        for (int i = 0; i < c.NumSteps; i++)
        {
            var ti = Math.Pow(a + i / (double)(c.NumSteps - 1) * (b - a), c.Rho);
            t[i] = net is null ? ti : net.RoundSigma(ti);
        }
        t[c.NumSteps] = 0;
        return t;
    }

    /// <summary>Samples; churn noise comes from <paramref name="generator"/> (or the global RNG). Returns float64.</summary>
    public static Tensor Sample(Precond net, Tensor latents, HeunSamplerConfig? config = null, Tensor? classLabels = null, Generator? generator = null)
        => Sample(net, latents, config ?? new HeunSamplerConfig(), classLabels, RandnLike(generator));

    /// <summary>Samples with the churn noise given by <paramref name="randnLike"/> (as edm_sampler's randn_like).</summary>
    public static Tensor Sample(Precond net, Tensor latents, HeunSamplerConfig config, Tensor? classLabels, Func<Tensor, Tensor> randnLike)
    {
        var tSteps = TimeSteps(config, net);
        bool wasTraining = net.training;
        net.eval();
        try
        {
            using var outer = NewDisposeScope();
            var xNext = latents.to(float64).Times(tSteps[0]);
            for (int i = 0; i < config.NumSteps; i++)
            {
                using var scope = NewDisposeScope();
                xNext = Step(net, xNext, tSteps[i], tSteps[i + 1], config, classLabels, randnLike).MoveToOuterDisposeScope();
            }
            return xNext.MoveToOuterDisposeScope();
        }
        finally
        {
            net.train(wasTraining);
        }
    }

    /// <summary>
    /// One step of edm_sampler, from x_cur at t_cur to x at t_next (float64): optional churn (S_churn), an Euler step,
    /// then Heun's second-order correction unless t_next = 0 (the last step, where edm_sampler's `i &lt; num_steps - 1`
    /// skips it: t_next is 0 exactly there and nowhere else). The network runs in its current mode (the caller puts
    /// it in eval mode, as <see cref="Sample"/> does) under no_grad.
    /// </summary>
    public static Tensor Step(Precond net, Tensor xCur, double tCur, double tNext, HeunSamplerConfig config, Tensor? classLabels,
        Func<Tensor, Tensor>? randnLike = null)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        int n = config.NumSteps;
        xCur = xCur.to(float64);
        double gamma = config.SMin <= tCur && tCur <= config.SMax ? Math.Min(config.SChurn / n, Math.Sqrt(2) - 1) : 0;
        double tHat = net.RoundSigma(tCur + gamma * tCur);
        // The reference always draws the churn noise (scaled by 0 when gamma = 0); skip the draw then,
        // which leaves the result unchanged and saves an image-sized randn per step.
        var xHat = gamma > 0
            ? xCur.Plus((randnLike ?? RandnLike(null))(xCur).to(float64).Times(Math.Sqrt(tHat * tHat - tCur * tCur) * config.SNoise))
            : xCur;
        var denoised = net.call(xHat, tensor(tHat, dtype: float64, device: xHat.device), classLabels).to(float64);
        var dCur = (xHat - denoised).Over(tHat);
        var xNext = xHat.Plus(dCur.Times(tNext - tHat));
        if (tNext != 0)
        {
            denoised = net.call(xNext, tensor(tNext, dtype: float64, device: xNext.device), classLabels).to(float64);
            var dPrime = (xNext - denoised).Over(tNext);
            xNext = xHat.Plus(dCur.Times(0.5).Plus(dPrime.Times(0.5)).Times(tNext - tHat));
        }
        return xNext.MoveToOuterDisposeScope();
    }

    private static Func<Tensor, Tensor> RandnLike(Generator? generator) =>
        like => randn(like.shape, dtype: float64, device: like.device, generator: generator);
}
