using System.Text.Json;
using static TorchSharp.torch;

namespace Ect.Compute.Tests.Evaluation;

/// <summary>
/// Regenerates the golden "formula weights" of tests/golden/fid-inception (README, "Formula weights"):
/// for state-dict entry k and element i, a = 0.7*i + 1.3*k + 0.1 (float64, left to right), s = sin(a), then per kind
/// conv weight (gain/sqrt(fan_in))*s, fc weight (gain/sqrt(in))*s, fc bias 0.01*s, bn weight 1+0.1*s, bn bias 0.05*s,
/// running_mean 0.02*s, running_var 1+0.5*(1+s)/2, num_batches_tracked 0; cast to float32 by round-to-nearest.
/// </summary>
internal static class InceptionFormulaWeights
{
    public sealed record Entry(string Key, int K, long[] Shape, string Kind, double FanIn, float[] First5, double Sum, double SumSq);

    public static IReadOnlyList<Entry> Entries { get; } = LoadEntries();

    static IReadOnlyList<Entry> LoadEntries()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(EvalTestPaths.FidInception, "weights-formula.json")));
        return doc.RootElement.GetProperty("entries").EnumerateArray().Select(e => new Entry(
            e.GetProperty("key").GetString()!,
            e.GetProperty("k").GetInt32(),
            e.GetProperty("shape").EnumerateArray().Select(x => x.GetInt64()).ToArray(),
            e.GetProperty("kind").GetString()!,
            e.TryGetProperty("fan_in", out var f) ? f.GetDouble() : 0,
            e.GetProperty("first5").EnumerateArray().Select(x => (float)x.GetDouble()).ToArray(),
            e.TryGetProperty("sum", out var s) ? s.GetDouble() : 0,
            e.TryGetProperty("sum_sq", out var q) ? q.GetDouble() : 0)).ToList();
    }

    /// <summary>The float32 values of one entry (num_batches_tracked: a single 0).</summary>
    public static float[] Values(Entry e, double gain)
    {
        var n = e.Shape.Aggregate(1L, (a, b) => a * b);
        var v = new float[n];
        if (e.Kind == "bn_num_batches_tracked") return v;
        var fanIn = e.Kind == "weight" ? e.FanIn : 0;
        var scale = e.Kind == "weight" ? gain / Math.Sqrt(fanIn) : 0;
        for (long i = 0; i < n; i++)
        {
            var a = 0.7 * i + 1.3 * e.K + 0.1;
            var s = Math.Sin(a);
            double x = e.Kind switch
            {
                "weight" => scale * s,
                "bias" => 0.01 * s,
                "bn_weight" => 1.0 + 0.1 * s,
                "bn_bias" => 0.05 * s,
                "bn_running_mean" => 0.02 * s,
                "bn_running_var" => 1.0 + 0.5 * (1.0 + s) / 2.0,
                _ => throw new InvalidOperationException($"unknown kind {e.Kind} for {e.Key}"),
            };
            v[i] = (float)x;
        }
        return v;
    }

    /// <summary>The whole state dict as tensors (caller disposes), keyed like pytorch-fid.</summary>
    public static Dictionary<string, Tensor> StateDict(double gain)
    {
        var dict = new Dictionary<string, Tensor>();
        foreach (var e in Entries)
        {
            dict[e.Key] = e.Kind == "bn_num_batches_tracked"
                ? tensor(0L)
                : tensor(Values(e, gain), e.Shape);
        }
        return dict;
    }

    /// <summary>
    /// Neumaier-compensated float64 sums of the values and their squares (more accurate than numpy's pairwise sum,
    /// so the comparison error is numpy's), plus the sum of absolute values for an absolute tolerance.
    /// </summary>
    public static (double sum, double sumSq, double sumAbs) Sums(float[] v)
    {
        double s = 0, cs = 0, q = 0, cq = 0, a = 0;
        foreach (var f in v)
        {
            double x = f, x2 = x * x;
            var t = s + x; cs += Math.Abs(s) >= Math.Abs(x) ? (s - t) + x : (x - t) + s; s = t;
            var u = q + x2; cq += q >= x2 ? (q - u) + x2 : (x2 - u) + q; q = u;
            a += Math.Abs(x);
        }
        return (s + cs, q + cq, a);
    }
}
