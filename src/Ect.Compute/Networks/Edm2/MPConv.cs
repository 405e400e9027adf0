using TorchSharp;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;

namespace Ect.Compute.Networks.Edm2;

/// <summary>
/// EDM2's magnitude-preserving convolution / fully connected layer, no bias: parameter <c>weight</c>
/// [out, in, *kernel] (kernel [] = fully connected, [k,k] = conv with padding k/2), initialised randn.
/// forward(x, gain): in training mode with <see cref="ForceWeightNormalization"/> on, the stored weight is first
/// replaced by normalize(weight) in place without grad (forced weight normalisation); then
/// w = normalize(weight) gain / sqrt(fan_in), and y = x w^T or conv2d(x, w). Gradients flow through the second
/// normalize of the (already normalised) weight, as in the official code.
/// </summary>
public sealed class MPConv : nn.Module<Tensor, Tensor>
{
    /// <summary>libtorch configured as ect runs it before the first convolution (see Conv2d's static constructor).</summary>
    static MPConv() => Runtime.LibTorchBackends.Configure();

    public int InChannels { get; }
    public int OutChannels { get; }
    public int[] Kernel { get; }
    public Parameter Weight { get; }

    /// <summary>
    /// locuslab/ect's <c>force_wn</c> (NVlabs/edm2 has none: it always normalises in training). The ECT loss turns it
    /// off for the teacher pass: a second in-place update of a weight that the student's graph saved would make
    /// backward fail, and the teacher must see the student's weights.
    /// </summary>
    public bool ForceWeightNormalization { get; set; } = true;

    public MPConv(int inChannels, int outChannels, int[] kernel) : base(nameof(MPConv))
    {
        if (kernel.Length is not (0 or 2)) throw new ArgumentException($"MPConv kernel must be [] or [k,k], got [{string.Join(",", kernel)}].");
        InChannels = inChannels;
        OutChannels = outChannels;
        Kernel = kernel;
        long[] shape = [outChannels, inChannels, .. kernel.Select(k => (long)k)];
        using (no_grad())
            Weight = new Parameter(randn(shape, device: ModuleDevice.Current));
        register_parameter("weight", Weight);
    }

    public override Tensor forward(Tensor x) => Forward(x, null);

    /// <summary>The layer with a learned scalar <paramref name="gain"/> (null = 1).</summary>
    public Tensor Forward(Tensor x, Tensor? gain)
    {
        // Deviation: the official code casts weight.to(float32) (a no-op for float32 weights, and the stored
        // weights are always float32 here: fp16 applies only on CUDA) and the product w.to(x.dtype); CPU float32 only.
        if (training && ForceWeightNormalization)
        {
            using var noGrad = no_grad();
            using var normalised = Mp.Normalize(Weight);
            Weight.copy_(normalised);
        }
        using var w = Mp.Normalize(Weight);
        double fanIn = w[0].numel();
        using var g = gain?.Over(Math.Sqrt(fanIn));
        using var ws = g is null ? w.Times(1 / Math.Sqrt(fanIn)) : w * g;
        if (ws.dim() == 2)
        {
            using var wt = ws.t();
            return x.matmul(wt);
        }
        return Convolve(x, ws, ws.shape[^1] / 2);
    }

    // Deviation (platform): the official code calls conv2d directly; here channel counts are padded where oneDNN is
    // wrong on this project's hosts (out_conv's img_channels outputs, any C mod 16 != 0: see ChannelPaddedConvolution).
    private static Tensor Convolve(Tensor x, Tensor w, long padding) => ChannelPaddedConvolution.Conv2d(x, w, padding: padding);
}
