using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Compute.Networks;

/// <summary>
/// EDM's timestep embedding for DDPM++/ADM: freqs_i = (1/maxPositions)^(i / (C/2 - endpoint)),
/// output [cos(x freqs), sin(x freqs)] (SongUNet swaps the halves afterwards). No parameters.
/// </summary>
public sealed class PositionalEmbedding : nn.Module<Tensor, Tensor>
{
    public int NumChannels { get; }
    public int MaxPositions { get; }
    public bool Endpoint { get; }

    public PositionalEmbedding(int numChannels, int maxPositions = 10000, bool endpoint = false) : base(nameof(PositionalEmbedding))
    {
        NumChannels = numChannels;
        MaxPositions = maxPositions;
        Endpoint = endpoint;
    }

    public override Tensor forward(Tensor x)
    {
        int half = NumChannels / 2;
        using var halfScalar = half.ToScalar();
        using var idx = arange(ScalarConstants.Zero, halfScalar, ScalarConstants.One, dtype: float32, device: x.device);
        using var expo = idx.Over(half - (Endpoint ? 1 : 0));
        using var freqs = pow(1.0 / MaxPositions, expo);
        using var arg = x.outer(freqs.to(x.dtype));
        using var c = arg.cos();
        using var s = arg.sin();
        return cat([c, s], 1);
    }
}

/// <summary>
/// EDM's timestep embedding for NCSN++: random frequencies in buffer <c>freqs</c> [C/2] = N(0,1) * scale,
/// output [cos(2 pi x freqs), sin(2 pi x freqs)]. EDM uses scale 16; locuslab/ect changed the default to 0.02.
/// </summary>
public sealed class FourierEmbedding : nn.Module<Tensor, Tensor>
{
    public Tensor Freqs { get; }

    /// <summary>The official ECT code's default scale (EDM's own is 16): see <see cref="SongUNetConfig.FourierScale"/>.</summary>
    public const double EctDefaultScale = 0.02;

    public FourierEmbedding(int numChannels, double scale = EctDefaultScale) : base(nameof(FourierEmbedding))
    {
        using (no_grad())
        {
            using var r = randn(numChannels / 2, device: ModuleDevice.Current);
            Freqs = r.Times(scale);
        }
        register_buffer("freqs", Freqs);
    }

    public override Tensor forward(Tensor x)
    {
        using var f = Freqs.Times(2 * Math.PI).to(x.dtype);
        using var arg = x.outer(f);
        using var c = arg.cos();
        using var s = arg.sin();
        return cat([c, s], 1);
    }
}
