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
                p.copy_(randn(p.shape, generator: g) * 0.3);
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
        var cIn = 1.0 / (s.pow(2) + sd * sd).sqrt();
        var cNoise = s.log() / 4;
        Tensor cSkip, cOut;
        if (training)
        {
            cSkip = sd * sd / (s.pow(2) + sd * sd);
            cOut = s * sd / (s.pow(2) + sd * sd).sqrt();
        }
        else
        {
            cSkip = sd * sd / ((s - _sigmaMin).pow(2) + sd * sd);
            cOut = (s - _sigmaMin) * sd / (s.pow(2) + sd * sd).sqrt();
        }
        var e = emb.call(cNoise.reshape(-1, 1)).reshape(-1, conv0.out_channels, 1, 1);
        var h = nn.functional.silu(conv0.call(cIn * xf) + e);
        var f = conv1.call(drop.call(h));
        return (cSkip * xf + cOut * f).MoveToOuterDisposeScope();
    }
}
