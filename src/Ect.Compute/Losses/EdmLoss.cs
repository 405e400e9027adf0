using Ect.Compute.Preconditioning;
using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Compute.Losses;

/// <summary>
/// EDM's denoising loss (NVlabs/edm training/loss.py EDMLoss): sigma = exp(n P_std + P_mean),
/// weight = (sigma^2 + sd^2) / (sigma sd)^2, per-pixel loss = weight (D(y + sigma eps, sigma) - y)^2.
/// The reference returns the per-pixel tensor and its training loop sums it and divides by the batch size;
/// <see cref="Compute(Precond, Tensor, Tensor?)"/> returns the per-sample sum over pixels [N], so
/// TrainStep's loss.sum() / batch_size gives exactly the reference's objective.
/// </summary>
public sealed class EdmLoss : ITrainingLoss
{
    public EdmLoss(double pMean = -1.2, double pStd = 1.2, double sigmaData = 0.5)
    {
        PMean = pMean; PStd = pStd; SigmaData = sigmaData;
    }

    public double PMean { get; }
    public double PStd { get; }
    public double SigmaData { get; }

    public Tensor Compute(Precond net, Tensor images, Tensor? classLabels)
    {
        using var scope = NewDisposeScope();
        var perPixel = PerPixel(net, images, classLabels);
        return perPixel.reshape(images.shape[0], -1).sum(dim: -1).MoveToOuterDisposeScope();
    }

    /// <summary>The reference's per-pixel loss [N,C,H,W], drawing n then eps from the global RNG in its order.</summary>
    public Tensor PerPixel(Precond net, Tensor images, Tensor? classLabels)
    {
        using var scope = NewDisposeScope();
        var rndNormal = randn(new long[] { images.shape[0], 1, 1, 1 }, dtype: float32, device: images.device);
        var eps = randn_like(images);
        return PerPixel(net, images, classLabels, rndNormal, eps).MoveToOuterDisposeScope();
    }

    /// <summary>Per-pixel loss with given draws (<paramref name="rndNormal"/> [N] or [N,1,1,1], <paramref name="eps"/> like images).</summary>
    public Tensor PerPixel(Precond net, Tensor images, Tensor? classLabels, Tensor rndNormal, Tensor eps)
    {
        long n = images.shape[0];
        using var scope = NewDisposeScope();
        var sigma = rndNormal.reshape(n, 1, 1, 1).Times(PStd).Plus(PMean).exp();
        var weight = sigma.Squared().Plus(SigmaData * SigmaData) / sigma.Times(SigmaData).Squared();
        var noise = eps * sigma;
        var d = net.call(images.Plus(noise), sigma.flatten(), classLabels);
        return (weight * (d - images).Squared()).MoveToOuterDisposeScope();
    }
}
