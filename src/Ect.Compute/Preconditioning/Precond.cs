using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Compute.Preconditioning;

/// <summary>
/// A denoiser D(x, sigma, classLabels) that wraps a raw network F with EDM-style preconditioning.
/// The mode follows <c>Module.training</c>: training mode uses EDM's coefficients, eval mode the
/// inference coefficients of the concrete wrapper (for ECT: the consistency boundary D(x, t_min) = x).
/// x: [N,C,H,W] (any float dtype; computed in float32); sigma: 0-dim or [N]; classLabels: [N,LabelDim] or null.
/// Returns float32 [N,C,H,W].
/// </summary>
public abstract class Precond : nn.Module<Tensor, Tensor, Tensor?, Tensor>
{
    protected Precond(string name) : base(name) { }

    public abstract double SigmaData { get; }

    /// <summary>The lowest noise level the denoiser supports (EDM's <c>net.sigma_min</c>; samplers clamp to it).</summary>
    public virtual double SigmaMin => 0;

    /// <summary>The highest noise level the denoiser supports (EDM's <c>net.sigma_max</c>).</summary>
    public virtual double SigmaMax => double.PositiveInfinity;

    /// <summary>EDM's <c>round_sigma</c>: the noise level the network actually sees for <paramref name="sigma"/>. The
    /// identity for EDM's and ECT's preconditioners (only VP/VE discretisations round); samplers call it.</summary>
    public virtual double RoundSigma(double sigma) => sigma;
    public abstract int ImgResolution { get; }
    public abstract int ImgChannels { get; }
    public abstract int LabelDim { get; }
}
