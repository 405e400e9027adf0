using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Compute.Optim;

/// <summary>
/// EDM2's power-function EMA (Karras et al. 2024, training/phema.py; locuslab/ect imgnet keeps stds [0.010, 0.050,
/// 0.100]): one averaged copy of the network per relative standard deviation std, each updated after the optimizer
/// step with beta = (1 - batch/cur_nimg)^(exp+1), exp = std_to_exp(std), as ema = lerp(ema, net, 1 - beta) over the
/// parameters (buffers stay as copied). cur_nimg is the image count after the step, so the first update copies the
/// net exactly (beta = 0).
/// </summary>
public sealed class PowerFunctionEma
{
    private readonly nn.Module _net;

    /// <param name="net">the trained network</param>
    /// <param name="stds">relative standard deviations of the averaging profiles (each in (0, ~0.28))</param>
    /// <param name="emas">one module of the net's architecture per std; they are set to the net's weights now (the reference's deepcopy)</param>
    public PowerFunctionEma(nn.Module net, IReadOnlyList<double> stds, IReadOnlyList<nn.Module> emas)
    {
        if (stds.Count == 0) throw new ArgumentException("PowerFunctionEma needs at least one std.", nameof(stds));
        if (emas.Count != stds.Count) throw new ArgumentException($"PowerFunctionEma: {stds.Count} stds but {emas.Count} EMA modules.", nameof(emas));
        Exps = stds.Select(StdToExp).ToList();
        _net = net;
        Stds = stds.ToList();
        Emas = emas.ToList();
        foreach (var ema in Emas) Ema.CopyWeights(net, ema);
    }

    public IReadOnlyList<double> Stds { get; }
    public IReadOnlyList<double> Exps { get; }
    public IReadOnlyList<nn.Module> Emas { get; }

    /// <summary>
    /// std_to_exp: the exponent gamma of the profile t^gamma whose relative std is <paramref name="std"/>, the largest
    /// real root of x^3 + 7x^2 + (16 - std^-2)x + (12 - std^-2) (phema.py solves it with np.roots; we use Newton's
    /// method from above the largest root, where the cubic is increasing and convex, so it converges monotonically).
    /// </summary>
    public static double StdToExp(double std)
    {
        if (!(std > 0) || double.IsInfinity(std)) throw new ArgumentOutOfRangeException(nameof(std), std, "EMA std must be a positive number.");
        double t = 1 / (std * std);
        double a = 7, b = 16 - t, c = 12 - t;
        if (!(c < 0)) throw new ArgumentOutOfRangeException(nameof(std), std, $"EMA std {std} is too large: the power-function profile needs std < {Math.Sqrt(1 / 12.0):G4}.");
        double x = 1 + Math.Max(Math.Abs(a), Math.Max(Math.Abs(b), Math.Abs(c))); // Cauchy bound: above every root
        for (int i = 0; i < 200; i++)
        {
            double f = ((x + a) * x + b) * x + c;
            double df = (3 * x + 2 * a) * x + b;
            double next = x - f / df;
            if (next >= x) break; // converged from above (monotone); rounding can stall it
            x = next;
        }
        return x;
    }

    /// <summary>exp_to_std: sqrt((exp+1) / (exp+2)^2 / (exp+3)), the inverse of <see cref="StdToExp"/>.</summary>
    public static double ExpToStd(double exp) => Math.Sqrt((exp + 1) / ((exp + 2) * (exp + 2)) / (exp + 3));

    /// <summary>power_function_beta(std, t_next = cur_nimg, t_delta = batch) = (1 - batch/cur_nimg)^(exp+1).</summary>
    public static double Beta(double exp, long curNimg, int batchSize)
    {
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "the batch size must be positive.");
        if (curNimg < batchSize) throw new ArgumentOutOfRangeException(nameof(curNimg), curNimg, $"cur_nimg counts the images after the step, so it is at least the batch size ({batchSize}).");
        return Math.Pow(1 - (double)batchSize / curNimg, exp + 1);
    }

    /// <summary>Updates every EMA after an optimizer step; <paramref name="curNimg"/> counts this step's images. Returns the betas used.</summary>
    public double[] Update(long curNimg, int batchSize)
    {
        var betas = new double[Stds.Count];
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var netParams = _net.named_parameters().ToList();
        for (int i = 0; i < Stds.Count; i++)
        {
            betas[i] = Beta(Exps[i], curNimg, batchSize);
            var emaParams = Emas[i].named_parameters().ToDictionary(p => p.name, p => p.parameter);
            foreach (var (name, p) in netParams)
            {
                if (!emaParams.TryGetValue(name, out var pe))
                    throw new InvalidOperationException($"EMA (std {Stds[i]}) has no parameter '{name}': it must have the network's architecture.");
                // p_ema.lerp_(p_net, 1 - beta) as phema.py (a 0-dim weight tensor: TorchSharp's lerp_ takes no scalar).
                var w = tensor(1 - betas[i], dtype: p.dtype, device: p.device);
                pe.lerp_(p.detach(), w);
            }
        }
        return betas;
    }
}
