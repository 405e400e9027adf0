using Ect.Compute.Networks;
using Ect.Compute.Networks.Edm2;
using Ect.Compute.Preconditioning;
using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Compute.Losses;

/// <summary>How ECT weights the per-sample distance.</summary>
public enum EctWeighting
{
    /// <summary>1 / (t - r): the CIFAR-10 / DDPM++ recipe (and the golden data).</summary>
    InverseGap,
    /// <summary>(t^2 + sd^2) / (t sd)^2 ("snr + k", the reference's current default, EDM2 networks).</summary>
    SnrPlusK,
}

/// <summary>
/// ECT's loss (locuslab/ect training/loss.py ECMLoss), per sample:
/// t = exp(n P_std + P_mean); r = mapping(t, stage); x_t = y + t eps, x_r = y + r eps with one shared eps;
/// f_t = D(x_t, t) with grad; f_r = D(x_r, r) without grad, in training mode with the same dropout mask
/// (the global RNG state is captured before f_t and restored before f_r); where r == 0 the target is y;
/// d = sum (f_t - f_r)^2; d' = sqrt(d + c^2) - c (c > 0) or sqrt(d); loss = d' * weight(t, r).
/// </summary>
public sealed class EctLoss : ITrainingLoss, IStagedLoss
{
    public EctLoss(MappingFunction? mapping = null, double pMean = -1.1, double pStd = 2.0, double sigmaData = 0.5,
        double c = 0.0, EctWeighting weighting = EctWeighting.InverseGap)
    {
        if (c < 0) throw new ArgumentOutOfRangeException(nameof(c), c, "The pseudo-Huber constant c must be >= 0 (0 = plain L2 distance).");
        Mapping = mapping ?? new MappingFunction();
        PMean = pMean; PStd = pStd; SigmaData = sigmaData; C = c; Weighting = weighting;
    }

    public MappingFunction Mapping { get; }
    public double PMean { get; }
    public double PStd { get; }
    public double SigmaData { get; }
    public double C { get; }
    public EctWeighting Weighting { get; }

    /// <summary>
    /// On the CPU, replay f_t's dropout masks in f_r instead of restoring the RNG state and drawing them again
    /// (<see cref="SharedDropout"/>; the same bits either way, EctLossTests compares the two). Default true.
    /// </summary>
    public bool ReplayDropoutMasks { get; init; } = true;

    /// <summary>Dropout masks the last <see cref="Compute(Precond, Tensor, Tensor?, Tensor, Tensor)"/> replayed in f_r (0: the RNG state was restored).</summary>
    public int LastReplayedMasks { get; private set; }

    /// <summary>The schedule's stage; forwards to the mapping function.</summary>
    public int Stage { get => Mapping.Stage; set => Mapping.Stage = value; }

    /// <summary>Draws n ~ N(0,1) [N,1,1,1] and eps ~ N(0,I) from the global RNG (in the reference's order), then computes the loss.</summary>
    public Tensor Compute(Precond net, Tensor images, Tensor? classLabels)
    {
        using var scope = NewDisposeScope();
        var rndNormal = randn(new long[] { images.shape[0], 1, 1, 1 }, dtype: float32, device: images.device);
        var eps = randn_like(images);
        return Compute(net, images, classLabels, rndNormal, eps).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The loss with given draws (for tests against the reference): <paramref name="rndNormal"/> [N] or [N,1,1,1],
    /// <paramref name="eps"/> shaped like the images. Returns the per-sample loss [N].
    /// </summary>
    public Tensor Compute(Precond net, Tensor images, Tensor? classLabels, Tensor rndNormal, Tensor eps)
    {
        long n = images.shape[0];
        if (rndNormal.numel() != n) throw new ArgumentException($"rndNormal has {rndNormal.numel()} elements; the batch has {n} images.", nameof(rndNormal));
        if (!eps.shape.SequenceEqual(images.shape)) throw new ArgumentException($"eps shape [{string.Join(",", eps.shape)}] differs from the images' [{string.Join(",", images.shape)}].", nameof(eps));

        using var scope = NewDisposeScope();
        var t = rndNormal.reshape(n, 1, 1, 1).Times(PStd).Plus(PMean).exp();
        var r = Mapping.TToR(t);
        var xT = images.Plus(eps * t);
        var xR = images.Plus(eps * r);

        // Shared dropout mask: the reference saves the RNG state before f_t and restores it before f_r (every mask drawn
        // twice). On the CPU the masks f_t draws are recorded and replayed in f_r instead (SharedDropout: same masks,
        // same bits, and the generator ends where the reference's does); on CUDA the state is restored as the reference does.
        // A network whose dropout does not go through SharedDropout records nothing and gets the restored state.
        var rngState = torch.random.get_rng_state();
        Runtime.DeviceRng.Sync(images.device); // a CUDA device's dropout stream follows the CPU state (no-op on the CPU)
        using var masks = ReplayDropoutMasks && images.device_type == DeviceType.CPU ? SharedDropout.Record() : null;
        var fT = net.call(xT, t.flatten(), classLabels);

        Tensor target;
        LastReplayedMasks = 0;
        if (r.max().item<float>() > 0)
        {
            LastReplayedMasks = masks?.Count ?? 0;
            if (masks is { Count: > 0 }) masks.Replay();
            else
            {
                masks?.Dispose(); // nothing recorded: the second pass draws (from the restored state) as the reference does
                torch.random.set_rng_state(rngState);
                Runtime.DeviceRng.Sync(images.device);
            }
            // The imgnet branch's disable_forced_wn: EDM2 layers must not re-normalise their weights in place in the
            // teacher pass (the student's graph saved them); a no-op for networks without MPConv layers.
            using (ForcedWeightNormalization.Suspend(net))
            using (no_grad())
            {
                var mask = r.gt(ScalarConstants.Zero);
                // Deviation: the reference evaluates D at r = 0 too (c_noise = -inf, giving NaN that nan_to_num
                // and the mask discard). We pass t for those rows instead: they are replaced by y all the same,
                // the other rows are unaffected (samples are independent in the network), and the dropout draws
                // are identical; it also skips pointless NaN arithmetic at sigma = 0 (log 0).
                var rNet = where(mask, r, t).flatten();
                var fR = nan_to_num(net.call(xR, rNet, classLabels));
                if (masks is { Count: > 0 }) masks.CheckAllReplayed();
                // Same arithmetic as the reference: mask * f_r + (~mask) * y.
                target = (mask * fR).Plus(mask.logical_not() * images).detach();
            }
        }
        else
        {
            target = images;
        }

        var d = (fT - target).Squared().reshape(n, -1).sum(dim: -1);
        var dist = C > 0 ? d.Plus(C * C).sqrt().Minus(C) : d.sqrt();
        var tf = t.flatten();
        var rf = r.flatten();
        // InverseGap divides (as the CIFAR-10 reference does) rather than multiplying by a reciprocal,
        // which would round differently.
        var loss = Weighting == EctWeighting.InverseGap
            ? dist / (tf - rf)
            : dist * (tf.Squared().Plus(SigmaData * SigmaData) / tf.Times(SigmaData).Squared());
        return loss.MoveToOuterDisposeScope();
    }
}
