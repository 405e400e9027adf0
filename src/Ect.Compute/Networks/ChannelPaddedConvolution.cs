using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Ect.Compute.Networks;

/// <summary>One convolution as a network ran it (shapes, not data): what <see cref="ChannelPaddedConvolution.Record"/> collects.</summary>
public sealed record ConvolutionCall(long[] InputShape, long[] WeightShape, long Stride, long Padding, long Groups, bool Transposed)
{
    public override string ToString() =>
        $"{(Transposed ? "conv_transpose2d" : "conv2d")} x[{string.Join(",", InputShape)}] w[{string.Join(",", WeightShape)}] stride {Stride} pad {Padding} groups {Groups}";

    public bool Equals(ConvolutionCall? other) => other is not null && InputShape.SequenceEqual(other.InputShape) &&
        WeightShape.SequenceEqual(other.WeightShape) && Stride == other.Stride && Padding == other.Padding && Groups == other.Groups && Transposed == other.Transposed;

    public override int GetHashCode() => ToString().GetHashCode(StringComparison.Ordinal);
}

/// <summary>
/// Every float32 convolution of the networks (<see cref="Conv2d"/>, <see cref="Edm2.MPConv"/>) runs here, with its
/// channel counts zero-padded so that libtorch's oneDNN never runs a kernel with a partial 16-channel block in the
/// dimension it sums over.
/// <para>
/// Why: on this project's AMD EPYC hosts (AVX-512F, 2026-12-01) oneDNN in libtorch 2.10 (TorchSharp-cpu 0.107)
/// returns wrong float32 results, against a float64 reference, for 3x3 convolutions whose summed channel count is
/// not a multiple of 16 (max error ~0.5-7 on values of size ~1, sometimes NaN, at 1 and 2 threads; the wrong values
/// differ between runs, so it also broke exact resume):
/// forward, which sums over input channels, for 16 &lt; C_in with C_in mod 16 != 0 (17, 20, 24, 40 wrong; 1-16, 32,
/// 48, 64, 80, 96 exact); backward-data, which sums over output channels, for every C_out mod 16 != 0 (1-15, 17, 20,
/// 24, 40 wrong); backward-weight always exact; 1x1 kernels exact (the grid and the shipped networks' shapes:
/// tests/Ect.Compute.Tests/Networks/OneDnnConvolutionProbeTests). With ONEDNN_MAX_CPU_ISA=AVX2 the same holds for
/// channel counts not a multiple of 8, so it is oneDNN's channel-tail handling, not one ISA's kernel.
/// </para>
/// <para>
/// What: for groups = 1, C_out is padded to a multiple of 16 (extra kernel rows are zero; their outputs are sliced
/// off, so the result is the same sum), and C_in above 16 to a multiple of 16 (zero input channels times zero kernel
/// columns add nothing). Depthwise (groups = C) resampling pads C to a multiple of 16. 1x1 kernels are padded the
/// same way (earlier hosts saw NaN from 1x1 backward-data with 8 outputs at 2 threads). The shipped configurations
/// (DDPM++ 16 and 32 channels, EDM2) have multiples of 16 everywhere except the image channels (C_in 1-4 of the first
/// convolution: exact, not padded; C_out 1-3 of the last: padded), so padding costs them almost nothing.
/// bfloat16 / float16 on the CPU (ect.run.mixed-precision) have the same fault, wider: C_in is padded too even when
/// below 16 (1 and 8 were wrong there), and depthwise resampling runs in float32 (see <see cref="InFloat32"/>).
/// float64 (replicas for checks) never reaches oneDNN and is not padded; nothing is padded for low precision on CUDA.
/// </para>
/// </summary>
public static class ChannelPaddedConvolution
{
    /// <summary>oneDNN's AVX-512 float32 channel block: summed channel counts are padded to a multiple of this.</summary>
    public const int ChannelBlock = 16;

    [ThreadStatic] private static ICollection<ConvolutionCall>? _recorder;

    /// <summary>
    /// Adds every convolution this thread runs through this class to <paramref name="into"/> until the returned handle
    /// is disposed (the probe test uses it to find every convolution shape a network runs).
    /// </summary>
    public static IDisposable Record(ICollection<ConvolutionCall> into)
    {
        var previous = _recorder;
        _recorder = into;
        return new Restore(previous);
    }

    private sealed class Restore(ICollection<ConvolutionCall>? previous) : IDisposable
    {
        public void Dispose() => _recorder = previous;
    }

    /// <summary>The smallest multiple of <see cref="ChannelBlock"/> that is >= <paramref name="channels"/>.</summary>
    public static long RoundUp(long channels) => (channels + ChannelBlock - 1) / ChannelBlock * ChannelBlock;

    /// <summary>conv2d(x, w) with square stride and padding, groups 1 or depthwise (groups = C_in, w [C,1,k,k]).</summary>
    public static Tensor Conv2d(Tensor x, Tensor w, long stride = 1, long padding = 0, long groups = 1, bool pad = true)
    {
        _recorder?.Add(new ConvolutionCall(x.shape, w.shape, stride, padding, groups, false));
        if (!pad || !Padded(x))
            return F.conv2d(x, w, strides: [stride, stride], padding: [padding, padding], groups: groups);
        if (groups != 1 && IsLowPrecision(x.dtype))
            return InFloat32(x, w, (x32, w32) => Conv2d(x32, w32, stride, padding, groups, pad));
        if (groups == 1)
            return Dense(x, w, (xp, wp) => F.conv2d(xp, wp, strides: [stride, stride], padding: [padding, padding]));
        return Depthwise(x, w, groups, (xp, wp, c) => F.conv2d(xp, wp, strides: [stride, stride], padding: [padding, padding], groups: c));
    }

    /// <summary>Depthwise conv_transpose2d (groups = C_in, w [C,1,k,k]): the FIR up-sampling of <see cref="Networks.Conv2d"/>.</summary>
    public static Tensor DepthwiseConvTranspose2d(Tensor x, Tensor w, long stride, long padding, bool pad = true)
    {
        long c = x.shape[1];
        _recorder?.Add(new ConvolutionCall(x.shape, w.shape, stride, padding, c, true));
        if (!pad || !Padded(x))
            return F.conv_transpose2d(x, w, strides: [stride, stride], padding: [padding, padding], groups: c);
        if (IsLowPrecision(x.dtype))
            return InFloat32(x, w, (x32, w32) => DepthwiseConvTranspose2d(x32, w32, stride, padding, pad));
        return Depthwise(x, w, c, (xp, wp, cp) => F.conv_transpose2d(xp, wp, strides: [stride, stride], padding: [padding, padding], groups: cp));
    }

    /// <summary>
    /// Which convolutions go through oneDNN's channel-blocked kernels: float32 (on every device, as before), and bfloat16 /
    /// float16 on the CPU (ect.run.mixed-precision; on CUDA cuDNN runs them and nothing is padded).
    /// </summary>
    private static bool Padded(Tensor x) =>
        x.dtype == ScalarType.Float32 || (IsLowPrecision(x.dtype) && x.device_type == TorchSharp.DeviceType.CPU);

    private static bool IsLowPrecision(ScalarType t) => t is ScalarType.BFloat16 or ScalarType.Float16;

    /// <summary>
    /// bfloat16 / float16 depthwise (FIR resampling) convolutions on the CPU run in float32 and are cast back: oneDNN's
    /// bf16 depthwise stride-2 kernels were wrong by 1.0 relative (every value) for conv_transpose2d forward and conv2d
    /// backward-data, at C = 8, 16 and 32 alike, padded to 16 or 32 or not (measured 2026-12-02 on the AMD EPYC hosts,
    /// tests/Ect.Compute.Tests/Networks/Bf16ConvolutionProbeTests). The filter is the fixed [1,1] FIR: cheap in float32.
    /// </summary>
    private static Tensor InFloat32(Tensor x, Tensor w, Func<Tensor, Tensor, Tensor> conv)
    {
        using var x32 = x.to(ScalarType.Float32);
        using var w32 = w.to(ScalarType.Float32);
        using var y32 = conv(x32, w32);
        return y32.to(x.dtype);
    }

    private static Tensor Dense(Tensor x, Tensor w, Func<Tensor, Tensor, Tensor> conv)
    {
        long cout = w.shape[0], cin = w.shape[1];
        long coutP = cout % ChannelBlock == 0 ? cout : RoundUp(cout);
        // bfloat16: forward and backward-data were wrong for every C_in that is not a multiple of 16 (1 and 8 too), so
        // C_in is always padded there; float32's small C_in (1-16) are exact and stay unpadded (the golden bits).
        bool padSmallCin = IsLowPrecision(x.dtype);
        long cinP = cin % ChannelBlock == 0 || (cin <= ChannelBlock && !padSmallCin) ? cin : RoundUp(cin);
        if (coutP == cout && cinP == cin) return conv(x, w);
        using var scope = NewDisposeScope();
        var xp = x;
        var wp = w;
        if (cinP != cin)
        {
            xp = cat([x, zeros([x.shape[0], cinP - cin, x.shape[2], x.shape[3]], x.dtype, x.device)], 1);
            wp = cat([wp, zeros([cout, cinP - cin, w.shape[2], w.shape[3]], w.dtype, w.device)], 1);
        }
        if (coutP != cout)
            wp = cat([wp, zeros([coutP - cout, cinP, w.shape[2], w.shape[3]], w.dtype, w.device)], 0);
        var y = conv(xp, wp);
        return y.narrow(1, 0, cout).MoveToOuterDisposeScope();
    }

    private static Tensor Depthwise(Tensor x, Tensor w, long c, Func<Tensor, Tensor, long, Tensor> conv)
    {
        if (c != x.shape[1] || w.shape[0] != c || w.shape[1] != 1)
            throw new ArgumentException($"Only depthwise grouped convolutions are supported here (groups = C_in = w.shape[0], w.shape[1] = 1); got x {x.shape[1]} channels, w [{string.Join(",", w.shape)}], groups {c}.");
        long cp = RoundUp(c);
        if (cp == c) return conv(x, w, c);
        using var scope = NewDisposeScope();
        var xp = cat([x, zeros([x.shape[0], cp - c, x.shape[2], x.shape[3]], x.dtype, x.device)], 1);
        var wp = cat([w, zeros([cp - c, 1, w.shape[2], w.shape[3]], w.dtype, w.device)], 0);
        var y = conv(xp, wp, cp);
        return y.narrow(1, 0, c).MoveToOuterDisposeScope();
    }
}
