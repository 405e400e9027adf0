using Ect.Compute.Preconditioning;
using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Compute.Sampling;

/// <summary>
/// Few-step consistency sampling (the reference's generator_fn): t_steps = [t_max, mid_t..., 0];
/// x = z * t_0 in float64; for each step x = D(x, t_i) (eval mode, t_i a 0-dim float64 tensor), cast back to
/// float64, and where t_{i+1} > 0 add t_{i+1} * noise. [80] = 1 step; [80, 0.821] = 2 steps.
/// </summary>
public static class ConsistencySampler
{
    /// <summary>
    /// Samples with noise between steps drawn from <paramref name="generator"/> (or the global RNG when null).
    /// Returns float64 [N,C,H,W]. The network's training flag is restored afterwards.
    /// </summary>
    public static Tensor Sample(Precond net, Tensor latents, IReadOnlyList<double> tSteps, Tensor? classLabels = null, Generator? generator = null)
        => Sample(net, latents, tSteps, classLabels, (step, like) => randn(like.shape, dtype: float64, device: like.device, generator: generator));

    /// <summary>
    /// Samples with the noise added before step i (i = 1..) given by <paramref name="noiseForStep"/>(i, x); it may
    /// return any float dtype, it is cast to float64 as the reference's randn_like on a float64 x.
    /// </summary>
    public static Tensor Sample(Precond net, Tensor latents, IReadOnlyList<double> tSteps, Tensor? classLabels, Func<int, Tensor, Tensor> noiseForStep)
    {
        if (tSteps.Count == 0) throw new ArgumentException("tSteps needs at least t_max (e.g. [80] for one step, [80, 0.821] for two).", nameof(tSteps));
        for (int i = 0; i < tSteps.Count; i++)
        {
            if (!(tSteps[i] > 0) || double.IsInfinity(tSteps[i])) throw new ArgumentException($"tSteps[{i}] = {tSteps[i]}: every t must be finite and > 0 (t_N = 0 is appended).", nameof(tSteps));
            if (i > 0 && tSteps[i] >= tSteps[i - 1]) throw new ArgumentException($"tSteps must decrease: tSteps[{i}] = {tSteps[i]} >= tSteps[{i - 1}] = {tSteps[i - 1]}.", nameof(tSteps));
        }

        bool wasTraining = net.training;
        net.eval();
        try
        {
            using var noGrad = no_grad();
            using var outer = NewDisposeScope();
            var steps = tSteps.Append(0.0).ToArray();
            var x = latents.to(float64).Times(steps[0]);
            for (int i = 0; i + 1 < steps.Length; i++)
            {
                using var scope = NewDisposeScope();
                var tCur = tensor(steps[i], dtype: float64, device: latents.device);
                var next = net.call(x, tCur, classLabels).to(float64);
                if (steps[i + 1] > 0)
                    next = next.Plus(noiseForStep(i + 1, next).to(float64).Times(steps[i + 1]));
                x = next.MoveToOuterDisposeScope();
            }
            return x.MoveToOuterDisposeScope();
        }
        finally
        {
            net.train(wasTraining);
        }
    }
}
