using Ect.Compute;
using Ect.Compute.Networks;
using Ect.Compute.Preconditioning;
using Ect.Compute.Sampling;
using Ect.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Actors.Evaluation;

/// <summary>
/// The one way ECT.NET makes images from a model, for every network (DDPM++, NCSN++, EDM2): the daemon's evaluators
/// (through the EMA copy the trainer hands them, <see cref="EmaEvaluationModel"/>) and `ect eval`
/// (CheckpointEvaluation) both call <see cref="Generate"/>, so the same weights, seed and batch size give the same
/// images, and the daemon's fd-resnet18 equals `ect eval`'s on the same checkpoint.
/// <para>
/// An image set is drawn batch by batch: batch b's latents and sampler noise come from one torch Generator seeded
/// with <see cref="BatchSeed"/>(seed, b) (independent streams, so a batch can be made without drawing the ones before
/// it). A class-conditional network's labels are the caller's choice by set index (<see cref="ClassLabels"/>: by
/// default image i gets class i mod L; `ect eval --class K` one class; the sample grids a row per class);
/// firstImage is the set index of the batch's first image.
/// </para>
/// </summary>
public static class ImageGenerator
{
    /// <summary>
    /// The noise seed of batch <paramref name="batchIndex"/> of the image set keyed by <paramref name="seed"/>:
    /// SplitMix64 (Ect.Data's) of (seed, batch index), a non-negative int.
    /// </summary>
    public static int BatchSeed(int seed, int batchIndex) =>
        (int)(new SplitMix64((ulong)(uint)seed << 32 | (uint)batchIndex).Next() & 0x7FFFFFFF);

    /// <summary>
    /// <paramref name="count"/> images [count,C,R,R] float32 in [-1,1] (clamped) from <paramref name="net"/> (its own
    /// channels, resolution and classes), set indices firstImage..firstImage+count-1, latents and noise from a
    /// Generator seeded with <paramref name="batchSeed"/> (see <see cref="BatchSeed"/>), class labels by
    /// <paramref name="classes"/> (null: <see cref="ClassLabels.Default"/>). The caller owns the result (and the
    /// dispose scope it is made in).
    /// </summary>
    public static Tensor Generate(Precond net, SamplerChoice sampler, int count, int firstImage, int batchSeed, ClassLabels? classes = null)
    {
        using var noGrad = no_grad();
        // The generator lives on the network's device (CUDA's Philox and the CPU's mt19937 give different latents for a
        // seed: a seed names the same images on one device type, not across them).
        var device = Ect.Compute.Runtime.ModulePlacement.DeviceOf(net);
        var g = new Generator((ulong)batchSeed, device);
        var latents = randn([count, net.ImgChannels, net.ImgResolution, net.ImgResolution], dtype: float64, device: device, generator: g);
        var labels = Labels(net.LabelDim, count, firstImage, classes, device);
        var x = sampler switch
        {
            SamplerChoice.Consistency c => ConsistencySampler.Sample(net, latents, c.T, labels, g), // scales by t_max itself
            SamplerChoice.Heun h => HeunSampler.Sample(net, latents, new HeunSamplerConfig(NumSteps: h.NumSteps), labels, g),
            _ => throw new ArgumentOutOfRangeException(nameof(sampler)),
        };
        return x.clamp(ScalarConstants.MinusOne, ScalarConstants.One).to(float32);
    }

    /// <summary>One-hot labels [count, L] of set indices firstImage.. (null for an unconditional network).</summary>
    private static Tensor? Labels(int labelDim, int count, int firstImage, ClassLabels? classes, Device device)
    {
        if (labelDim == 0) return null;
        var choice = classes ?? ClassLabels.Default;
        var ids = new long[count];
        for (int i = 0; i < count; i++) ids[i] = choice.Of(firstImage + (long)i, labelDim);
        return nn.functional.one_hot(tensor(ids, dtype: int64, device: device), labelDim).to(float32);
    }
}
