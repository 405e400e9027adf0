using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Ect.Compute.Networks.Edm2;

/// <summary>
/// EDM2's magnitude-preserving primitives (Karras et al. 2024, NVlabs/edm2 training/networks_edm2.py, identical in
/// locuslab/ect's imgnet branch): normalize, mp_silu, mp_sum, mp_cat. Each mirrors the official code op by op so
/// that libtorch runs the same kernels (results then differ from PyTorch 1.13 only by kernel rounding).
/// </summary>
public static class Mp
{
    /// <summary>
    /// normalize(x, dim, eps=1e-4) = x / (eps + ||x||_dim * sqrt(numel(norm)/numel(x))), i.e. x divided by eps plus its
    /// RMS over the reduced dims. <paramref name="dims"/> null = all but dim 0 (per output row of a weight).
    /// Not idempotent: a row of RMS s becomes w/(s+eps), and normalising that again is not exactly w/(s+eps) again (see tests/golden/edm2-small/README.md).
    /// </summary>
    public static Tensor Normalize(Tensor x, long[]? dims = null, double eps = 1e-4)
    {
        dims ??= Enumerable.Range(1, (int)x.dim() - 1).Select(d => (long)d).ToArray();
        using var norm = linalg.vector_norm(x, 2, dims, keepdim: true); // float32 in, float32 norm (the official dtype=float32)
        double alpha = Math.Sqrt((double)norm.numel() / x.numel());
        // torch.add(eps, norm, alpha=a) = eps + a*norm in one kernel (as the official code).
        using var epsT = tensor(eps, dtype: norm.dtype, device: norm.device);
        using var alphaScalar = alpha.ToScalar();
        using var scaled = add(epsT, norm, alphaScalar);
        using var cast = scaled.to(x.dtype);
        return x / cast;
    }

    /// <summary>mp_silu(x) = silu(x) / 0.596 (unit variance for unit-variance input).</summary>
    public static Tensor Silu(Tensor x)
    {
        using var s = F.silu(x);
        return s.Over(0.596);
    }

    /// <summary>mp_sum(a, b, t) = lerp(a, b, t) / sqrt((1-t)^2 + t^2).</summary>
    public static Tensor Sum(Tensor a, Tensor b, double t)
    {
        // TorchSharp's lerp takes a tensor weight; a 0-dim tensor selects the same lerp formula per element
        // (a + w(b-a) for |w| < 0.5, else b - (b-a)(1-w)) as PyTorch's Python-float weight.
        using var w = tensor(t, dtype: a.dtype, device: a.device);
        using var l = a.lerp(b, w);
        return l.Over(Math.Sqrt((1 - t) * (1 - t) + t * t));
    }

    /// <summary>
    /// mp_cat(a, b, dim, t): concatenation along <paramref name="dim"/> with the halves weighted (1-t) and t and the
    /// whole scaled so that unit-variance inputs give a unit-variance output: C = sqrt((Na+Nb)/((1-t)^2+t^2)),
    /// cat([C/sqrt(Na)(1-t) a, C/sqrt(Nb) t b]).
    /// </summary>
    public static Tensor Cat(Tensor a, Tensor b, long dim = 1, double t = 0.5)
    {
        double na = a.shape[dim], nb = b.shape[dim];
        double c = Math.Sqrt((na + nb) / ((1 - t) * (1 - t) + t * t));
        double wa = c / Math.Sqrt(na) * (1 - t);
        double wb = c / Math.Sqrt(nb) * t;
        using var sa = a.Times(wa);
        using var sb = b.Times(wb);
        return cat([sa, sb], dim);
    }
}

/// <summary>Resampling mode of an EDM2 <see cref="Edm2Block"/>.</summary>
public enum ResampleMode { Keep, Down, Up }

/// <summary>
/// EDM2's resample(x, f, mode): 'down' = depthwise conv2d with outer(f,f)/sum(f)^2, stride 2 (f = [1,1]: 2x2 box
/// average); 'up' = depthwise conv_transpose2d with 4x that filter, stride 2 (f = [1,1]: nearest neighbour).
/// </summary>
public static class Resample
{
    public static Tensor Apply(Tensor x, ResampleMode mode, IReadOnlyList<int>? filter = null)
    {
        if (mode == ResampleMode.Keep) return x.alias();
        filter ??= [1, 1];
        if (filter.Count % 2 != 0) throw new ArgumentException($"EDM2 resample needs a filter of even length, got [{string.Join(",", filter)}].");
        long pad = (filter.Count - 1) / 2;
        float sum = filter.Sum();
        var f = filter.Select(v => v / sum).ToArray();
        var outer = new float[f.Length * f.Length];
        for (int i = 0; i < f.Length; i++)
            for (int j = 0; j < f.Length; j++)
                outer[i * f.Length + j] = f[i] * f[j];
        long c = x.shape[1];
        using var f2 = tensor(outer, [1, 1, f.Length, f.Length], dtype: x.dtype, device: x.device);
        if (mode == ResampleMode.Down)
        {
            using var w = f2.tile([c, 1, 1, 1]);
            return F.conv2d(x, w, strides: [2, 2], padding: [pad, pad], groups: c);
        }
        using var f4 = f2.Times(4);
        using var wUp = f4.tile([c, 1, 1, 1]);
        return F.conv_transpose2d(x, wUp, strides: [2, 2], padding: [pad, pad], groups: c);
    }
}
