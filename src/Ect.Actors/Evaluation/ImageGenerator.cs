using Ect.Compute;
using Ect.Compute.Networks;
using Ect.Compute.Preconditioning;
using Ect.Compute.Sampling;
using Ect.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Actors.Evaluation;

/// <summary>
/// The one way ECT.NET makes images from a model: the daemon's evaluators (through the EMA copy the trainer hands
/// them, TorchTrainingEngine's IEvaluationModel) and `ect eval` (CheckpointEvaluation) both call
/// <see cref="Generate"/>, so the same weights, seed and batch size give the same images, and the daemon's
/// fd-resnet18 equals `ect eval`'s on the same checkpoint.
/// <para>
/// An image set is drawn batch by batch: batch b's latents and sampler noise come from one torch Generator seeded
/// with <see cref="BatchSeed"/>(seed, b) (independent streams, so a batch can be made without drawing the ones before
/// it), and image i of the set gets class i mod L for a class-conditional network (firstImage is the set index of the
/// batch's first image).
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
    /// <paramref name="count"/> images [count,C,R,R] float32 in [-1,1] (clamped), set indices firstImage..firstImage+count-1,
    /// latents and noise from a Generator seeded with <paramref name="batchSeed"/> (see <see cref="BatchSeed"/>).
    /// The caller owns the result (and the dispose scope it is made in).
    /// </summary>
    public static Tensor Generate(Precond net, SongUNetConfig cfg, SamplerChoice sampler, int count, int firstImage, int batchSeed)
    {
        using var noGrad = no_grad();
        var g = new Generator((ulong)batchSeed);
        var latents = randn([count, cfg.InChannels, cfg.ImgResolution, cfg.ImgResolution], dtype: float64, generator: g);
        Tensor? labels = null;
        if (cfg.LabelDim > 0)
        {
            using var countScalar = count.ToScalar();
            using var first = firstImage.ToScalar();
            using var labelDim = cfg.LabelDim.ToScalar();
            using var indices = arange(ScalarConstants.Zero, countScalar, ScalarConstants.One, dtype: int64);
            labels = nn.functional.one_hot(indices.add(first, ScalarConstants.One).remainder(labelDim), cfg.LabelDim).to(float32);
        }
        var x = sampler switch
        {
            SamplerChoice.Consistency c => ConsistencySampler.Sample(net, latents, c.T, labels, g), // scales by t_max itself
            SamplerChoice.Heun h => HeunSampler.Sample(net, latents, new HeunSamplerConfig(NumSteps: h.NumSteps), labels, g),
            _ => throw new ArgumentOutOfRangeException(nameof(sampler)),
        };
        return x.clamp(ScalarConstants.MinusOne, ScalarConstants.One).to(float32);
    }
}
