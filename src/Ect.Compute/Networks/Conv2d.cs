using Parameter = TorchSharp.Modules.Parameter;
using TorchSharp;
using static TorchSharp.torch;

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
    /// Smallest output channel count any convolution kernel is run with: <see cref="ChannelPaddedConvolution"/> pads
    /// every summed channel count to a multiple of this (oneDNN on this project's AMD EPYC hosts is wrong otherwise;
    /// measured there). Kept as the name earlier code and tests use.
    /// </summary>
    public const int MinComputeChannels = ChannelPaddedConvolution.ChannelBlock;

    public int InChannels { get; }
    public int OutChannels { get; }
    public int Kernel { get; }
    public bool Up { get; }
    public bool Down { get; }
    public bool FusedResample { get; }
    public Parameter? Weight { get; }
    public Parameter? Bias { get; }
    public Tensor? ResampleFilter { get; }

    /// <summary>When true (default), convolutions run channel-padded (<see cref="ChannelPaddedConvolution"/>); false runs
    /// libtorch's kernels on the stored shapes (tests compare the two).</summary>
    public bool PadSmallConvolutions { get; set; } = true;

    /// <summary>libtorch configured as ect runs it (no NNPACK: <see cref="Runtime.LibTorchBackends.Configure"/>)
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
                Weight = new Parameter(w.Times(init.Weight));
                register_parameter("weight", Weight);
                if (bias)
                {
                    using var b = WeightInit.Create([outChannels], init.Mode, fanIn, fanOut);
                    Bias = new Parameter(b.Times(init.Bias));
                    register_parameter("bias", Bias);
                }
            }
            if (up || down)
            {
                using var f1 = tensor(resampleFilter.Select(v => (float)v).ToArray(), device: ModuleDevice.Current);
                using var outer = f1.outer(f1);
                ResampleFilter = (outer / f1.sum().Squared()).unsqueeze(0).unsqueeze(1);
                register_buffer("resample_filter", ResampleFilter);
            }
        }
    }

    public override Tensor forward(Tensor x)
    {
        // EDM's use_fp16 (mixed precision): weights, filter and bias in the input's dtype; in float32 no cast, no copy.
        using var wCast = Weight is { } w0 && w0.dtype != x.dtype ? w0.to(x.dtype) : null;
        using var fCast = ResampleFilter is { } f0 && f0.dtype != x.dtype ? f0.to(x.dtype) : null;
        using var bCast = Bias is { } b0 && b0.dtype != x.dtype ? b0.to(x.dtype) : null;
        var w = wCast ?? Weight;
        var f = fCast ?? ResampleFilter;
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
            x = x.Plus((bCast ?? Bias).reshape(1, -1, 1, 1));
        return x;
    }

    // Every kernel runs through ChannelPaddedConvolution: channel counts padded where oneDNN is wrong (see there).
    private Tensor Convolve(Tensor x, Tensor w, long padding) =>
        ChannelPaddedConvolution.Conv2d(x, w, padding: padding, pad: PadSmallConvolutions);

    // Depthwise resampling: one filter per channel (groups = C).
    private Tensor ResampleDown(Tensor x, Tensor f, long padding)
    {
        using var tiled = f.tile([x.shape[1], 1, 1, 1]);
        return ChannelPaddedConvolution.Conv2d(x, tiled, stride: 2, padding: padding, groups: x.shape[1], pad: PadSmallConvolutions);
    }

    private Tensor ResampleUp(Tensor x, Tensor f, long padding)
    {
        using var f4 = f.Times(4);
        using var tiled = f4.tile([x.shape[1], 1, 1, 1]);
        return ChannelPaddedConvolution.DepthwiseConvTranspose2d(x, tiled, 2, padding, pad: PadSmallConvolutions);
    }
}
