using System.Text.Json.Nodes;
using Ect.Compute.IO;
using Ect.Compute.Networks.Edm2;
using Ect.Compute.Preconditioning;
using Ect.Compute.Tests.TestSupport;
using FluentAssertions;
using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Compute.Tests.Networks.Edm2;

/// <summary>Loads the edm2-small golden set (tests/golden/edm2-small, see its README): config, weights, tensors, fingerprints.</summary>
public static class GoldenEdm2Small
{
    public static string Dir => RepoPaths.GoldenDir("edm2-small");

    /// <summary>meta.json, parsed afresh (callers may keep the node).</summary>
    public static JsonNode Meta() => JsonNode.Parse(File.ReadAllText(Path.Combine(Dir, "meta.json")))!;

    private static readonly Lazy<IReadOnlyList<string>> ParamNames =
        new(() => Meta()["param_names"]!.AsArray().Select(v => v!.GetValue<string>()).ToList());

    /// <summary>The network of meta.json's "network" (all other UNet/Block arguments are EDM2's defaults, as there).</summary>
    public static Edm2UNetConfig Config()
    {
        var n = Meta()["network"]!;
        n["class_name"]!.GetValue<string>().Should().Be("training.networks_edm2.Precond");
        n["use_fp16"]!.GetValue<bool>().Should().BeFalse();
        int[] Ints(string k) => n[k]!.AsArray().Select(v => v!.GetValue<int>()).ToArray();
        return new Edm2UNetConfig
        {
            ImgResolution = n["img_resolution"]!.GetValue<int>(),
            ImgChannels = n["img_channels"]!.GetValue<int>(),
            LabelDim = n["label_dim"]!.GetValue<int>(),
            ModelChannels = n["model_channels"]!.GetValue<int>(),
            ChannelMult = Ints("channel_mult"),
            NumBlocks = n["num_blocks"]!.GetValue<int>(),
            AttnResolutions = Ints("attn_resolutions"),
            Dropout = n["dropout"]!.GetValue<double>(),
            DropoutRes = n["dropout_res"]!.GetValue<int>(),
        };
    }

    public static RawTensorFolder Weights() => new(Path.Combine(Dir, "weights.json"));
    public static RawTensorFolder Tensors() => new(Path.Combine(Dir, "tensors.json"));

    /// <summary>An Edm2Precond with the golden weights W0 loaded by name.</summary>
    public static Edm2Precond LoadNet()
    {
        var net = new Edm2Precond(Config());
        var w = Weights().ReadAll();
        net.LoadStateDict(w);
        foreach (var t in w.Values) t.Dispose();
        return net;
    }

    /// <summary>A dropout hook that injects the stored noise <c>{prefix}unet.{block}</c> and records which blocks asked.</summary>
    public static DropoutNoise InjectedDropout(RawTensorFolder folder, string prefix, ICollection<string>? asked = null) =>
        (block, y) =>
        {
            asked?.Add(block);
            var noise = folder.Read($"{prefix}unet.{block}");
            noise.shape.Should().Equal(y.shape, $"stored dropout noise of {block}");
            return noise;
        };

    /// <summary>Same shape and every element equal (bitwise for finite values).</summary>
    public static bool BitwiseEqual(Tensor a, Tensor b)
    {
        using var scope = NewDisposeScope();
        return a.shape.SequenceEqual(b.shape) && a.dtype == b.dtype && a.detach().eq(b).all().item<bool>();
    }

    /// <summary>
    /// The README's fingerprint of a tensor, in float64: [sum, sum of squares, max, min, sum(x_i ((i mod 13) - 6))]
    /// over the C-order flattening.
    /// </summary>
    public static double[] Fingerprint(Tensor t)
    {
        using var scope = NewDisposeScope();
        var x = t.detach().to(float64).flatten();
        using var n = x.numel().ToScalar();
        using var thirteen = 13.ToScalar();
        var idx = arange(ScalarConstants.Zero, n, ScalarConstants.One, dtype: int64);
        var w = idx.remainder(thirteen).Minus(6).to(float64);
        return [x.sum().item<double>(), x.Squared().sum().item<double>(), x.max().item<double>(), x.min().item<double>(), (x * w).sum().item<double>()];
    }

    /// <summary>
    /// Asserts max|a - ref| &lt;= atolScale max|ref| + rtol |ref| element-wise (the README's "relative to the tensor's max
    /// abs"), and returns max|a - ref| / max|ref|. The default 1e-5 is tighter than the README's suggested 1e-4 (measured:
    /// &lt;= 8e-7 for every forward tensor at 1 and 2 threads), so that it separates D_train from D_train_nown (~5e-5).
    /// </summary>
    public static double ShouldMatch(Tensor actual, Tensor reference, string what, double atolScale = 1e-5, double rtol = 0)
    {
        actual.shape.Should().Equal(reference.shape, $"shape of {what}");
        using var scope = NewDisposeScope();
        var a = actual.detach().to(float64);
        var r = reference.to(float64);
        a.isfinite().all().item<bool>().Should().BeTrue($"{what} must be finite");
        var diff = (a - r).abs();
        double maxRef = r.abs().max().item<double>();
        double maxDiff = diff.max().item<double>();
        double worst = (diff - r.abs().Times(rtol).Plus(atolScale * maxRef)).max().item<double>();
        worst.Should().BeLessThanOrEqualTo(0, $"{what}: max |diff| {maxDiff:E3} exceeds {atolScale}*max|ref| ({maxRef:E3}) + {rtol}|ref|");
        return maxRef > 0 ? maxDiff / maxRef : maxDiff;
    }

    /// <summary>Fingerprint rows [P,5] (meta.json param_names order) against ours, per column with rtol and an atol scaled by the column's magnitude.</summary>
    public static void FingerprintsShouldMatch(nn.Module net, Tensor reference, string what, double rtol = 1e-4, double atol = 1e-6)
    {
        var names = ParamNames.Value;
        reference.shape.Should().Equal([names.Count, 5], $"fingerprint rows of {what}");
        var ours = net.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var refRows = reference.to(float64).data<double>().ToArray();
        for (int i = 0; i < names.Count; i++)
        {
            ours.Should().ContainKey(names[i]);
            var fp = Fingerprint(ours[names[i]]);
            for (int col = 0; col < 5; col++)
            {
                double want = refRows[i * 5 + col], got = fp[col];
                // sums of near-cancelling values (columns 0 and 4) get an atol scaled by the sum of squares' root
                double scale = Math.Sqrt(Math.Abs(refRows[i * 5 + 1]));
                Math.Abs(got - want).Should().BeLessThanOrEqualTo(rtol * Math.Abs(want) + atol * Math.Max(scale, 1),
                    $"{what}: fingerprint column {col} of {names[i]} (ours {got:R}, reference {want:R})");
            }
        }
    }
}
