using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Compute.Optim;

/// <summary>
/// EMA settings. Either a fixed <see cref="Beta"/> (ECT: 0.9993 / 0.9999) or an EDM half-life in kimg with an
/// optional ramp-up ratio; the half-life wins when set, as in the reference loop ("ema_beta ... Overwritten by
/// ema_halflife_kimg").
/// </summary>
public sealed record EmaConfig(double Beta = 0.9999, double? HalfLifeKimg = null, double? RampupRatio = null)
{
    /// <summary>
    /// beta for one step. EDM: ema_nimg = halflife_kimg * 1000; with ramp-up ema_nimg = min(ema_nimg, cur_nimg * ratio);
    /// beta = 0.5 ** (batch_size / max(ema_nimg, 1e-8)). <paramref name="curNimg"/> is the image count before this
    /// step's images are added (the reference increments cur_nimg after the EMA update).
    /// </summary>
    public double BetaAt(long curNimg, int batchSize)
    {
        if (HalfLifeKimg is not { } kimg) return Beta;
        double nimg = kimg * 1000.0;
        if (RampupRatio is { } ratio) nimg = Math.Min(nimg, curNimg * ratio);
        return Math.Pow(0.5, batchSize / Math.Max(nimg, 1e-8));
    }
}

/// <summary>EMA of a module's parameters held in a separate module of the same architecture.</summary>
public static class Ema
{
    /// <summary>
    /// ema = p.lerp(ema, beta) for each parameter pair, as the reference (p_ema.copy_(p_net.detach().lerp(p_ema, beta))).
    /// Parameters are matched by name; buffers are not averaged (the reference iterates parameters only).
    /// </summary>
    public static void Update(nn.Module net, nn.Module ema, double beta)
    {
        if (!(beta >= 0 && beta <= 1)) throw new ArgumentOutOfRangeException(nameof(beta), beta, "EMA beta must be in [0, 1].");
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var emaParams = ema.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, p) in net.named_parameters())
        {
            if (!emaParams.TryGetValue(name, out var pe))
                throw new InvalidOperationException($"EMA module has no parameter '{name}': it must have the network's architecture.");
            // TorchSharp's lerp needs a tensor weight; a 0-dim tensor of the parameter's dtype gives the
            // same kernel arithmetic as PyTorch's Python-scalar weight (both use the float weight).
            var w = tensor(beta, dtype: p.dtype, device: p.device);
            pe.copy_(p.detach().lerp(pe, w));
        }
    }

    /// <summary>Copies every parameter and buffer of <paramref name="source"/> into <paramref name="target"/> (deep copy of the weights).</summary>
    public static void CopyWeights(nn.Module source, nn.Module target)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var dst = target.state_dict();
        foreach (var (name, t) in source.state_dict())
        {
            if (!dst.TryGetValue(name, out var d))
                throw new InvalidOperationException($"target module has no tensor '{name}': it must have the source's architecture.");
            d.copy_(t);
        }
    }
}
