using Ect.Compute.Networks;
using static TorchSharp.torch;

namespace Ect.Compute.Preconditioning;

/// <summary>
/// ECT's preconditioning (locuslab/ect <c>ECMPrecond</c>). Training mode: EDM's coefficients
/// c_skip = sd^2/(s^2+sd^2), c_out = s sd/sqrt(s^2+sd^2). Eval mode: c_skip = sd^2/((s-smin)^2+sd^2),
/// c_out = (s-smin) sd/sqrt(s^2+sd^2), so D(x, sigma_min) = x exactly (consistency boundary condition).
/// c_in = 1/sqrt(s^2+sd^2), c_noise = ln(s)/4.
/// </summary>
public sealed class EctPrecond : SongUNetPrecond
{
    public override double SigmaMin { get; }

    public EctPrecond(SongUNetConfig net, double sigmaMin = 0.003, double sigmaData = 0.5)
        : base(nameof(EctPrecond), net, sigmaData)
    {
        if (!(sigmaMin >= 0)) throw new ArgumentException($"EctPrecond: sigma_min must be >= 0, got {sigmaMin}.");
        SigmaMin = sigmaMin;
    }

    protected override (Tensor CSkip, Tensor COut) SkipOutCoefficients(Tensor s)
    {
        double sd2 = SigmaData * SigmaData;
        using var s2 = s.Squared();
        using var s2sd2 = s2.Plus(sd2);
        using var denom = s2sd2.sqrt();
        using var shifted = training ? s.alias() : s.Minus(SigmaMin); // eval: sigma - sigma_min (boundary condition)
        using var shifted2 = shifted.Squared();
        using var skipDen = shifted2.Plus(sd2);
        using var outNum = shifted.Times(SigmaData);
        return (ScalarMath.Over(sd2, skipDen), outNum / denom);
    }
}
