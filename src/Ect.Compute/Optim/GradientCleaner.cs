using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ect.Compute.Optim;

/// <summary>
/// The reference training loop's gradient sanitising, in place on every parameter's gradient:
/// torch.nan_to_num(grad, nan=0, posinf=1e5, neginf=-1e5, out=grad).
/// </summary>
public static class GradientCleaner
{
    public const double PosInf = 1e5;
    public const double NegInf = -1e5;

    /// <summary>locuslab/ect imgnet branch (ct_training_loop.py): nan_to_num(grad, nan=0, posinf=0, neginf=0).</summary>
    public const double ImgnetPosInf = 0;
    public const double ImgnetNegInf = 0;

    /// <summary>Cleans every gradient; returns how many entries were non-finite (0 when all were finite).</summary>
    public static long Clean(IEnumerable<Parameter> parameters) => Clean(parameters, PosInf, NegInf);

    /// <summary>Cleans every gradient with the given replacements for +inf / -inf (NaN -> 0); returns how many entries were non-finite.</summary>
    public static long Clean(IEnumerable<Parameter> parameters, double posInf, double negInf)
    {
        long bad = 0;
        using var scope = NewDisposeScope();
        foreach (var p in parameters)
        {
            var g = p.grad;
            if (g is null) continue;
            bad += g.isfinite().logical_not().sum().item<long>();
            g.nan_to_num_(0.0, posInf, negInf);
        }
        return bad;
    }

    /// <summary>True when every gradient entry is finite (no NaN/inf).</summary>
    public static bool AllFinite(IEnumerable<Parameter> parameters)
    {
        using var scope = NewDisposeScope();
        foreach (var p in parameters)
        {
            var g = p.grad;
            if (g is null) continue;
            if (!g.isfinite().all().item<bool>()) return false;
        }
        return true;
    }

    /// <summary>The L2 norm of all gradients together (squares summed in float64): the step statistics' grad norm.</summary>
    public static double Norm(IEnumerable<Parameter> parameters)
    {
        using var scope = NewDisposeScope();
        double sq = 0;
        foreach (var p in parameters)
        {
            var g = p.grad;
            if (g is null) continue;
            sq += g.to(float64).Squared().sum().item<double>();
        }
        return Math.Sqrt(sq);
    }
}
