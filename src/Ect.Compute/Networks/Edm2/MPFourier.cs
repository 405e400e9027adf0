using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Compute.Networks.Edm2;

/// <summary>
/// EDM2's magnitude-preserving Fourier features of the noise level: buffers <c>freqs</c> = 2 pi randn(C) bandwidth and
/// <c>phases</c> = 2 pi rand(C) (state-dict buffers, loaded with the weights); forward(x) = cos(outer(x, freqs) + phases) sqrt 2.
/// </summary>
public sealed class MPFourier : nn.Module<Tensor, Tensor>
{
    public Tensor Freqs { get; }
    public Tensor Phases { get; }

    public MPFourier(int numChannels, double bandwidth = 1) : base(nameof(MPFourier))
    {
        using (no_grad())
        {
            using var n = randn(numChannels, device: ModuleDevice.Current);
            Freqs = n.Times(2 * Math.PI).Times(bandwidth);
            using var u = rand(numChannels, device: ModuleDevice.Current);
            Phases = u.Times(2 * Math.PI);
        }
        register_buffer("freqs", Freqs);
        register_buffer("phases", Phases);
    }

    public override Tensor forward(Tensor x)
    {
        using var y = x.to(float32);
        using var f = Freqs.to(float32);
        using var outer = y.outer(f);
        using var p = Phases.to(float32);
        using var shifted = outer.Plus(p);
        using var c = shifted.cos();
        using var scaled = c.Times(Math.Sqrt(2));
        return scaled.to(x.dtype);
    }
}
