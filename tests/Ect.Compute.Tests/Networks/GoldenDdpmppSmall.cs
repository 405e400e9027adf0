using System.Text.Json.Nodes;
using Ect.Compute.IO;
using Ect.Compute.Networks;
using Ect.Compute.Preconditioning;
using Ect.Compute.Tests.TestSupport;
using FluentAssertions;
using static TorchSharp.torch;

namespace Ect.Compute.Tests.Networks;

/// <summary>Loads the ddpmpp-small golden set: its network config (meta.json), weights and tensors.</summary>
public static class GoldenDdpmppSmall
{
    public static string Dir => RepoPaths.GoldenDir("ddpmpp-small");

    public static SongUNetConfig Config()
    {
        var meta = JsonNode.Parse(File.ReadAllText(Path.Combine(Dir, "meta.json")))!["network"]!;
        int[] Ints(string k) => meta[k]!.AsArray().Select(v => v!.GetValue<int>()).ToArray();
        meta["model_type"]!.GetValue<string>().Should().Be("SongUNet");
        meta["embedding_type"]!.GetValue<string>().Should().Be("positional");
        meta["encoder_type"]!.GetValue<string>().Should().Be("standard");
        meta["decoder_type"]!.GetValue<string>().Should().Be("standard");
        int ch = meta["img_channels"]!.GetValue<int>();
        return new SongUNetConfig
        {
            ImgResolution = meta["img_resolution"]!.GetValue<int>(),
            InChannels = ch,
            OutChannels = ch,
            LabelDim = meta["label_dim"]!.GetValue<int>(),
            ModelChannels = meta["model_channels"]!.GetValue<int>(),
            ChannelMult = Ints("channel_mult"),
            NumBlocks = meta["num_blocks"]!.GetValue<int>(),
            AttnResolutions = Ints("attn_resolutions"),
            Dropout = meta["dropout"]!.GetValue<double>(),
            ChannelMultNoise = meta["channel_mult_noise"]!.GetValue<int>(),
            ResampleFilter = Ints("resample_filter"),
            EmbeddingType = EmbeddingType.Positional,
            EncoderType = EncoderType.Standard,
            DecoderType = DecoderType.Standard,
        };
    }

    public static RawTensorFolder Weights() => new(Path.Combine(Dir, "weights.json"));
    public static RawTensorFolder Tensors() => new(Path.Combine(Dir, "tensors.json"));

    /// <summary>An EctPrecond with the golden weights loaded.</summary>
    public static EctPrecond LoadNet()
    {
        var net = new EctPrecond(Config(), sigmaMin: 0.003, sigmaData: 0.5);
        var w = Weights().ReadAll();
        net.LoadStateDict(w);
        foreach (var t in w.Values) t.Dispose();
        return net;
    }

    /// <summary>Asserts |a-ref| &lt;= rtol |ref| + atolScale max|ref| element-wise, with a useful message.</summary>
    public static void ShouldMatch(Tensor actual, Tensor reference, string what, double rtol = 1e-4, double atolScale = 1e-5)
    {
        actual.shape.Should().Equal(reference.shape, $"shape of {what}");
        using var a = actual.to(float64);
        using var r = reference.to(float64);
        using var diff = (a - r).abs();
        double maxRef = r.abs().max().item<double>();
        using var tol = r.abs().Times(rtol).Plus(atolScale * maxRef);
        using var excess = diff - tol;
        double worst = excess.max().item<double>();
        double maxDiff = diff.max().item<double>();
        a.isfinite().all().item<bool>().Should().BeTrue($"{what} must be finite");
        worst.Should().BeLessThanOrEqualTo(0,
            $"{what}: max |diff| {maxDiff:E3} exceeds rtol {rtol} + {atolScale}*max|ref| ({maxRef:E3})");
    }
}
