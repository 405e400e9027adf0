using Ect.Compute.Networks;
using Ect.Compute.Preconditioning;
using FluentAssertions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ect.Compute.Tests.Networks;

/// <summary>Structure and smoke tests for the SongUNet switches (names, shapes, parameter counts).</summary>
[Collection("TorchThreads")]
public class SongUNetStructureTests
{
    private static SongUNetConfig Tiny(SongUNetConfig c) => c with
    {
        ImgResolution = 16, ModelChannels = 16, ChannelMult = [1, 2], NumBlocks = 1, AttnResolutions = [8], Dropout = 0,
    };

    [Fact]
    public void Cifar10DdpmPPHasEdmParameterCount()
    {
        torch.set_num_threads(1);
        using var net = new SongUNet(SongUNetConfig.Cifar10DdpmPP(imgChannels: 3));
        net.parameters().Sum(p => p.numel()).Should().Be(55_732_739);
        net.Config.Dropout.Should().Be(0.13);
        SongUNetConfig.Cifar10DdpmPP(dropout: 0.2).Dropout.Should().Be(0.2);
        var keys = net.state_dict().Keys.ToList();
        keys.Should().Contain(["map_layer0.weight", "map_layer1.bias", "enc.32x32_conv.weight", "enc.32x32_block0.norm0.weight",
            "enc.16x16_down.conv0.resample_filter", "enc.16x16_block0.qkv.weight", "dec.32x32_aux_conv.weight",
            "dec.32x32_aux_norm.bias", "dec.8x8_in0.proj.weight", "dec.16x16_block4.norm2.weight"]);
        keys.Should().NotContain(k => k.Contains("._") || k.Contains("k__"));
    }

    [Fact]
    public void NcsnPPHasFourierFreqsAndResidualEncoder()
    {
        torch.set_num_threads(1);
        torch.manual_seed(0);
        var cfg = Tiny(SongUNetConfig.NcsnPP(imgResolution: 16, imgChannels: 3, fourierScale: 16));
        using var net = new SongUNet(cfg);
        var sd = net.state_dict();
        sd["map_noise.freqs"].shape.Should().Equal(16); // noise channels = 16 * channel_mult_noise 2, half of them
        sd.Keys.Should().Contain(["enc.8x8_aux_residual.weight", "enc.8x8_aux_residual.bias", "enc.8x8_aux_residual.resample_filter"]);
        sd["enc.8x8_aux_residual.resample_filter"].shape.Should().Equal(1, 1, 4, 4);
        // [1,3,3,1] outer product normalised: corner 1/64, centre 9/64.
        sd["enc.8x8_aux_residual.resample_filter"][0, 0, 1, 1].item<float>().Should().BeApproximately(9f / 64, 1e-7f);
        sd["enc.8x8_aux_residual.weight"].shape.Should().Equal(16, 3, 3, 3);
        sd["map_layer0.weight"].shape.Should().Equal(64, 32);
        // Fourier freqs are N(0,1)*scale: their spread reflects the scale.
        sd["map_noise.freqs"].std().item<float>().Should().BeInRange(4f, 40f);
        using var y = net.forward(randn(2, 3, 16, 16), randn(2), null, null);
        y.shape.Should().Equal(2, 3, 16, 16);
        y.isfinite().all().item<bool>().Should().BeTrue();
    }

    [Fact]
    public void SkipEncoderAndSkipDecoderForwardAndBackward()
    {
        torch.set_num_threads(1);
        torch.manual_seed(0);
        var cfg = Tiny(SongUNetConfig.DdpmPP(16, 3)) with { EncoderType = EncoderType.Skip, DecoderType = DecoderType.Skip, ResampleFilter = [1, 3, 3, 1] };
        using var net = new SongUNet(cfg);
        net.EncoderNames.Should().Equal("16x16_conv", "16x16_block0", "8x8_down", "8x8_aux_down", "8x8_aux_skip", "8x8_block0");
        net.DecoderNames.Should().Equal("8x8_in0", "8x8_in1", "8x8_block0", "8x8_block1", "8x8_aux_norm", "8x8_aux_conv",
            "16x16_up", "16x16_block0", "16x16_block1", "16x16_aux_up", "16x16_aux_norm", "16x16_aux_conv");
        var sd = net.state_dict();
        sd.Keys.Should().Contain(["enc.8x8_aux_down.resample_filter", "enc.8x8_aux_skip.weight", "dec.16x16_aux_up.resample_filter", "dec.8x8_aux_conv.weight"]);
        sd.Keys.Should().NotContain(["enc.8x8_aux_down.weight", "dec.16x16_aux_up.weight"]); // kernel 0: no weight
        using var x = randn(2, 3, 16, 16).requires_grad_(true);
        using var y = net.forward(x, randn(2), null, null);
        y.shape.Should().Equal(2, 3, 16, 16);
        y.Squared().sum().backward();
        x.grad!.isfinite().all().item<bool>().Should().BeTrue();
        foreach (var p in net.parameters()) (p.grad?.isfinite().all().item<bool>() ?? false).Should().BeTrue("every parameter gets a finite gradient");
    }

    [Fact]
    public void LabelAndAugmentConditioningChangeTheOutput()
    {
        torch.set_num_threads(1);
        torch.manual_seed(0);
        var cfg = Tiny(SongUNetConfig.DdpmPP(16, 1, labelDim: 10)) with { AugmentDim = 9 };
        using var net = new SongUNet(cfg);
        net.eval();
        var sd = net.state_dict();
        sd["map_label.weight"].shape.Should().Equal(16, 10);
        sd["map_label.bias"].shape.Should().Equal(16);
        sd["map_augment.weight"].shape.Should().Equal(16, 9);
        sd.Keys.Should().NotContain("map_augment.bias");
        // Make the zero-ish-initialised output layer matter so that conditioning is visible.
        using (no_grad()) foreach (var (name, p) in net.named_parameters()) if (name.EndsWith("weight")) { using var r = randn_like(p); using var small = r.Times(0.1); p.PlusInPlace(small); }

        using var x = randn(2, 1, 16, 16);
        using var noise = randn(2);
        using var l0 = nn.functional.one_hot(tensor(new long[] { 0, 0 }), 10).to(float32);
        using var l1 = nn.functional.one_hot(tensor(new long[] { 3, 3 }), 10).to(float32);
        using var a = net.forward(x, noise, l0, null);
        using var b = net.forward(x, noise, l1, null);
        using var c = net.forward(x, noise, l0, randn(2, 9));
        (a - b).abs().max().item<float>().Should().BeGreaterThan(1e-4f);
        (a - c).abs().max().item<float>().Should().BeGreaterThan(1e-4f);
        var act = net.ExtractActivations(x, noise, l0);
        act.Keys.Should().Contain(["map_noise", "map_label", "map_layer0", "map_layer1", "enc.16x16_conv", "dec.16x16_aux_conv", "output"]);
        act["output"].Should().NotBeNull();
        GoldenDdpmppSmall.ShouldMatch(act["output"], a, "ExtractActivations output", 1e-6, 1e-7);

        var missingLabels = () => net.forward(x, noise, null, null);
        missingLabels.Should().Throw<ArgumentException>().WithMessage("*label_dim 10*");
    }

    [Fact]
    public void LabelDropoutZeroesLabelsOnlyInTraining()
    {
        torch.set_num_threads(1);
        torch.manual_seed(0);
        var cfg = Tiny(SongUNetConfig.DdpmPP(16, 1, labelDim: 4)) with { LabelDropout = 1.0 };
        using var net = new SongUNet(cfg);
        using var x = randn(2, 1, 16, 16);
        using var noise = randn(2);
        using var labels = ones(2, 4);
        var seen = new Dictionary<string, Tensor>();
        net.train();
        using (no_grad()) net.Forward(x, noise, labels, null, (n, t) => { if (n == "map_label") seen["train"] = t.clone(); });
        net.eval();
        using (no_grad()) net.Forward(x, noise, labels, null, (n, t) => { if (n == "map_label") seen["eval"] = t.clone(); });
        // With every label dropped, map_label sees zeros and outputs its bias.
        GoldenDdpmppSmall.ShouldMatch(seen["train"], net.state_dict()["map_label.bias"].expand(2, 16), "dropped labels", 1e-6, 1e-7);
        (seen["eval"] - seen["train"]).abs().max().item<float>().Should().BeGreaterThan(1e-3f);
    }

    [Fact]
    public void SameSeedGivesSameWeightsAndGroupNormIsInitialised()
    {
        torch.set_num_threads(1);
        var cfg = Tiny(SongUNetConfig.DdpmPP(16, 3));
        torch.manual_seed(42);
        using var a = new EctPrecond(cfg);
        torch.manual_seed(42);
        using var b = new EctPrecond(cfg);
        var sa = a.state_dict();
        var sb = b.state_dict();
        foreach (var (k, v) in sa) v.eq(sb[k]).all().item<bool>().Should().BeTrue(k);
        foreach (var (k, v) in sa.Where(kv => kv.Key.Contains("norm")))
        {
            var expected = k.EndsWith("weight") ? 1f : 0f;
            using var expectedScalar = expected.ToScalar();
            v.eq(expectedScalar).all().item<bool>().Should().BeTrue($"{k} is initialised to {expected}");
        }
        // init_zero convs are 1e-5 * xavier, not exactly zero.
        var conv1 = sa["model.enc.16x16_block0.conv1.weight"];
        conv1.abs().max().item<float>().Should().BeInRange(1e-8f, 1e-5f);
    }

    [Fact]
    public void InvalidConfigsFailClearly()
    {
        var bad = () => new SongUNet(SongUNetConfig.DdpmPP(30, 3) with { ChannelMult = [1, 2, 2] });
        bad.Should().Throw<ArgumentException>().WithMessage("*resolution 30*");
        var badDropout = () => new SongUNet(SongUNetConfig.DdpmPP(16, 3, dropout: 1.5));
        badDropout.Should().Throw<ArgumentException>().WithMessage("*Dropout*");
    }
}
