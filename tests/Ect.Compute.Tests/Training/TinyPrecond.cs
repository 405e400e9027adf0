using Ect.Compute.Preconditioning;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ect.Compute.Tests.Training;

/// <summary>
/// A small stand-in for EctPrecond in tests: ECT preconditioning (training mode = EDM coefficients, eval mode =
/// the boundary-condition coefficients with sigma_min) around a two-layer conv net with noise conditioning and
/// dropout, so the loss, dropout-mask sharing, optimizer and state code can be tested without SongUNet.
/// </summary>
public sealed class TinyPrecond : Precond
{
    private readonly Conv2d conv0;
    private readonly Linear emb;
    private readonly Dropout drop;
    private readonly Conv2d conv1;
    private readonly double _sigmaMin;

    public TinyPrecond(int channels = 1, int resolution = 8, int hidden = 8, double dropout = 0.0, double sigmaMin = 0.003, long seed = 1)
        : base(nameof(TinyPrecond))
    {
        ImgChannels = channels; ImgResolution = resolution; _sigmaMin = sigmaMin;
        using (var g = new Generator((ulong)seed))
        {
            // Weights from a private generator: construction does not consume the global RNG.
            conv0 = nn.Conv2d(channels, hidden, 3, padding: 1);
            emb = nn.Linear(1, hidden);
            conv1 = nn.Conv2d(hidden, channels, 3, padding: 1);
            using var _ = no_grad();
            foreach (var p in new nn.Module[] { conv0, emb, conv1 }.SelectMany(m => m.parameters()))
                { using var r = randn(p.shape, generator: g); using var scaled = r.Times(0.3); p.copy_(scaled); }
        }
        drop = nn.Dropout(dropout);
        RegisterComponents();
    }

    public override double SigmaData => 0.5;
    public override int ImgResolution { get; }
    public override int ImgChannels { get; }
    public override int LabelDim => 0;

    public override Tensor forward(Tensor x, Tensor sigma, Tensor? classLabels)
    {
        using var scope = NewDisposeScope();
        var xf = x.to(float32);
        var s = sigma.to(float32).reshape(-1, 1, 1, 1);
        double sd = SigmaData;
        // Owned Scalars only (ScalarMath), as in Ect.Compute: tests compare digests of runs that other test classes'
        // threads may interrupt with collections (docs/torchsharp-scalar-race.md).
        var cIn = ScalarMath.Over(1.0, s.Squared().Plus(sd * sd).sqrt());
        var cNoise = s.log().Over(4);
        Tensor cSkip, cOut;
        if (training)
        {
            cSkip = ScalarMath.Over(sd * sd, s.Squared().Plus(sd * sd));
            cOut = s.Times(sd) / s.Squared().Plus(sd * sd).sqrt();
        }
        else
        {
            cSkip = ScalarMath.Over(sd * sd, s.Minus(_sigmaMin).Squared().Plus(sd * sd));
            cOut = s.Minus(_sigmaMin).Times(sd) / s.Squared().Plus(sd * sd).sqrt();
        }
        var e = emb.call(cNoise.reshape(-1, 1)).reshape(-1, conv0.out_channels, 1, 1);
        var h = nn.functional.silu(Conv(conv0, cIn * xf).Plus(e));
        var f = Conv(conv1, drop.call(h));
        return (cSkip * xf).Plus(cOut * f).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The layer's 3x3 convolution through the project's channel padding, as every network of Ect.Compute runs it:
    /// oneDNN's unpadded kernels for a channel count that is not a multiple of 16 are wrong on this project's CPUs and
    /// read memory they should not (README "Known gaps"), so conv1's backward (C_out = 1) gave results that depended
    /// on the heap's contents: the digest tests failed about one Compute suite in three.
    /// </summary>
    private static Tensor Conv(Conv2d layer, Tensor x) =>
        global::Ect.Compute.Networks.ChannelPaddedConvolution.Conv2d(x, layer.weight!, padding: 1).Plus(layer.bias!.reshape(1, -1, 1, 1));
}
