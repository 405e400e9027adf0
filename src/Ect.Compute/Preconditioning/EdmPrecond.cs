using Ect.Compute.Networks;
using static TorchSharp.torch;

namespace Ect.Compute.Preconditioning;

/// <summary>
/// EDM's preconditioning (<c>EDMPrecond</c>): the same coefficients in both modes,
/// c_skip = sd^2/(s^2+sd^2), c_out = s sd/sqrt(s^2+sd^2), c_in = 1/sqrt(s^2+sd^2), c_noise = ln(s)/4.
/// Same state-dict layout as <see cref="EctPrecond"/>, so EDM-pretrained weights load into either. As EDM's
/// EDMPrecond: sigma_min = 0, sigma_max = inf (the supported range a sampler clamps to), round_sigma the identity.
/// </summary>
public sealed class EdmPrecond : SongUNetPrecond
{
    public EdmPrecond(SongUNetConfig net, double sigmaData = 0.5, double sigmaMin = 0, double sigmaMax = double.PositiveInfinity)
        : base(nameof(EdmPrecond), net, sigmaData)
    {
        if (!(sigmaMin >= 0) || !(sigmaMax > sigmaMin))
            throw new ArgumentException($"EdmPrecond: need 0 <= sigma_min < sigma_max, got sigma_min {sigmaMin}, sigma_max {sigmaMax}.");
        SigmaMin = sigmaMin;
        SigmaMax = sigmaMax;
    }

    public override double SigmaMin { get; }
    public override double SigmaMax { get; }

    protected override (Tensor CSkip, Tensor COut) SkipOutCoefficients(Tensor s)
    {
        double sd2 = SigmaData * SigmaData;
        using var s2 = s.Squared();
        using var s2sd2 = s2.Plus(sd2);
        using var denom = s2sd2.sqrt();
        using var outNum = s.Times(SigmaData);
        return (ScalarMath.Over(sd2, s2sd2), outNum / denom);
    }
}
