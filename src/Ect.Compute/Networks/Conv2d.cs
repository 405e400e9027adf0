using Parameter = TorchSharp.Modules.Parameter;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Ect.Compute.Networks;

/// <summary>
/// EDM's convolution with optional 2x up/down-sampling by a separable FIR filter.
/// Parameters <c>weight</c> [out,in,k,k] and <c>bias</c> [out] (absent when kernel is 0); buffer
/// <c>resample_filter</c> [1,1,f,f] only when up or down (EDM registers None otherwise, so it is not
/// in the state dict). Fused resampling follows locuslab/ect (which fixed EDM's fused-up padding).
/// </summary>
public sealed class Conv2d : nn.Module<Tensor, Tensor>
{
    /// <summary>
    /// Smallest channel count any convolution kernel is run with. TorchSharp-cpu 0.107 (oneDNN) returns wrong
    /// input gradients from conv backward-data when the convolution has few output channels (1-3, 8; sometimes
    /// 24): on the hosts of earlier sessions intermittently NaN at more than one thread; on this project's AMD EPYC hosts (AVX-512F)
    /// (2026-12-01) wrong by ~0.6-1.4 (max abs, gradients of size ~1) at one thread as well and NaN at two,
    /// every time, for 8x8 to 32x32 inputs (tests/Ect.Compute.Tests/Networks/PaddedConvolutionTests measures
    /// against a float64 reference). Forward and weight gradients are fine. So convolutions with fewer output
    /// channels run with a zero-padded kernel of this many output channels (16 was exact, to 1e-7, on both
    /// hosts, as were 32 and 64) and the result is sliced; the stored parameters keep EDM's shape. The extra
    /// output channels are exact zeros that are dropped, so results are unchanged. Since oneDNN is switched off
    /// altogether (Runtime.LibTorchBackends.Configure, also for 8- and 24-channel convolutions that this padding
    /// does not cover) ATen's own kernels run; the padding stays, for a process that turns oneDNN back on.
    /// </summary>
    public const int MinComputeChannels = 16;

    public int InChannels { get; }
    public int OutChannels { get; }
    public int Kernel { get; }
    public bool Up { get; }
    public bool Down { get; }
    public bool FusedResample { get; }
    public Parameter? Weight { get; }
    public Parameter? Bias { get; }
    public Tensor? ResampleFilter { get; }

    /// <summary>When true (default), apply the <see cref="MinComputeChannels"/> workaround.</summary>
    public bool PadSmallConvolutions { get; set; } = true;

    /// <summary>libtorch configured as ect runs it (no NNPACK, no oneDNN: <see cref="Runtime.LibTorchBackends.Configure"/>)
    /// before the first convolution of the process, whichever entry point builds the network (engine, eval, a test).</summary>
    static Conv2d() => Runtime.LibTorchBackends.Configure();

    public Conv2d(int inChannels, int outChannels, int kernel, bool bias = true, bool up = false, bool down = false,
        IReadOnlyList<int>? resampleFilter = null, bool fusedResample = false, LayerInit? init = null)
        : base(nameof(Conv2d))
    {
        if (up && down) throw new ArgumentException("Conv2d cannot both up- and down-sample.");
        init ??= new LayerInit();
        resampleFilter ??= [1, 1];
        InChannels = inChannels;
        OutChannels = outChannels;
        Kernel = kernel;
        Up = up;
        Down = down;
        FusedResample = fusedResample;
        long fanIn = (long)inChannels * kernel * kernel, fanOut = (long)outChannels * kernel * kernel;
        using (no_grad())
        {
            if (kernel != 0)
            {
                using var w = WeightInit.Create([outChannels, inChannels, kernel, kernel], init.Mode, fanIn, fanOut);
                Weight = new Parameter(w * init.Weight);
                register_parameter("weight", Weight);
                if (bias)
                {
                    using var b = WeightInit.Create([outChannels], init.Mode, fanIn, fanOut);
                    Bias = new Parameter(b * init.Bias);
                    register_parameter("bias", Bias);
                }
            }
            if (up || down)
            {
                using var f1 = tensor(resampleFilter.Select(v => (float)v).ToArray());
                using var outer = f1.outer(f1);
                ResampleFilter = (outer / f1.sum().square()).unsqueeze(0).unsqueeze(1);
                register_buffer("resample_filter", ResampleFilter);
            }
        }
    }

    public override Tensor forward(Tensor x)
    {
        var w = Weight;
        var f = ResampleFilter;
        long wPad = w is not null ? w.shape[^1] / 2 : 0;
        long fPad = f is not null ? (f.shape[^1] - 1) / 2 : 0;

        if (FusedResample && Up && w is not null)
        {
            x = ResampleUp(x, f!, Math.Max(fPad - wPad, 0));
            x = Convolve(x, w, Math.Max(wPad - fPad, 0));
        }
        else if (FusedResample && Down && w is not null)
        {
            x = Convolve(x, w, wPad + fPad);
            x = ResampleDown(x, f!, 0);
        }
        else
        {
            if (Up) x = ResampleUp(x, f!, fPad);
            if (Down) x = ResampleDown(x, f!, fPad);
            if (w is not null) x = Convolve(x, w, wPad);
        }
        if (Bias is not null)
            x = x.add(Bias.reshape(1, -1, 1, 1));
        return x;
    }

    private Tensor Convolve(Tensor x, Tensor w, long padding)
    {
        long outC = w.shape[0];
        if (!PadSmallConvolutions || outC >= MinComputeChannels)
            return F.conv2d(x, w, padding: [padding, padding]);
        using var zerosW = zeros([MinComputeChannels - outC, w.shape[1], w.shape[2], w.shape[3]], w.dtype);
        using var wPadded = cat([w, zerosW], 0);
        using var y = F.conv2d(x, wPadded, padding: [padding, padding]);
        return y.narrow(1, 0, outC);
    }

    // Depthwise resampling: one filter per channel (groups = C). With few channels the input is
    // zero-padded to MinComputeChannels channels (see MinComputeChannels) and the result sliced.
    private Tensor ResampleDown(Tensor x, Tensor f, long padding) =>
        Depthwise(x, f, (xin, w, c) => F.conv2d(xin, w, strides: [2, 2], padding: [padding, padding], groups: c));

    private Tensor ResampleUp(Tensor x, Tensor f, long padding)
    {
        using var f4 = f.mul(4);
        return Depthwise(x, f4, (xin, w, c) => F.conv_transpose2d(xin, w, strides: [2, 2], padding: [padding, padding], groups: c));
    }

    private Tensor Depthwise(Tensor x, Tensor f, Func<Tensor, Tensor, long, Tensor> op)
    {
        long c = x.shape[1];
        if (!PadSmallConvolutions || c >= MinComputeChannels)
        {
            using var tiled = f.tile([c, 1, 1, 1]);
            return op(x, tiled, c);
        }
        using var tiledPadded = f.tile([MinComputeChannels, 1, 1, 1]);
        using var pad = zeros([x.shape[0], MinComputeChannels - c, x.shape[2], x.shape[3]], x.dtype);
        using var xp = cat([x, pad], 1);
        using var y = op(xp, tiledPadded, MinComputeChannels);
        return y.narrow(1, 0, c);
    }
}
