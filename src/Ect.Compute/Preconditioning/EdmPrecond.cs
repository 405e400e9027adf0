using Ect.Compute.Networks;
using static TorchSharp.torch;

namespace Ect.Compute.Preconditioning;

/// <summary>
/// EDM's preconditioning (<c>EDMPrecond</c>): the same coefficients in both modes,
/// c_skip = sd^2/(s^2+sd^2), c_out = s sd/sqrt(s^2+sd^2), c_in = 1/sqrt(s^2+sd^2), c_noise = ln(s)/4.
/// Same state-dict layout as <see cref="EctPrecond"/>, so EDM-pretrained weights load into either.
/// </summary>
public sealed class EdmPrecond : SongUNetPrecond
{
    public EdmPrecond(SongUNetConfig net, double sigmaData = 0.5) : base(nameof(EdmPrecond), net, sigmaData) { }

    protected override (Tensor CSkip, Tensor COut) SkipOutCoefficients(Tensor s)
    {
        double sd2 = SigmaData * SigmaData;
        return (sd2 / (s.square() + sd2), s * SigmaData / (s.square() + sd2).sqrt());
    }
}
