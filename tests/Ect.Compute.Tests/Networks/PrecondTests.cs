using Ect.Compute.Networks;
using Ect.Compute.Preconditioning;
using FluentAssertions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ect.Compute.Tests.Networks;

/// <summary>Behaviour of EctPrecond / EdmPrecond beyond the golden comparison, and strict state-dict loading.</summary>
[Collection("TorchThreads")]
public class PrecondTests
{
    private static SongUNetConfig Tiny(int labelDim = 0) => SongUNetConfig.DdpmPP(16, 1, labelDim: labelDim) with
    {
        ModelChannels = 16, ChannelMult = [1, 2], NumBlocks = 1, AttnResolutions = [8], Dropout = 0,
    };

    [Fact]
    public void EctEvalModeSatisfiesBoundaryConditionAtSigmaMin()
    {
        torch.set_num_threads(1);
        torch.manual_seed(0);
        using var net = new EctPrecond(Tiny());
        net.eval();
        using var x = randn(3, 1, 16, 16);
        using (no_grad())
        {
            using var d = net.forward(x, tensor(new[] { 0.003f, 0.003f, 0.003f }), null);
            GoldenDdpmppSmall.ShouldMatch(d, x, "D(x, sigma_min) in eval mode", 0, 0);
            net.train();
            using var dTrain = net.forward(x, tensor(0.003f), null);
            (dTrain - x).abs().max().item<float>().Should().BeGreaterThan(0, "training mode uses EDM's c_skip < 1");
        }
    }

    [Fact]
    public void SigmaZeroGivesNaNLikeTheReferenceInsteadOfADisposedTensor()
    {
        // Regression: the output was disposed when it held NaN (List.Remove used Tensor.Equals, which is
        // element-wise and never equal for NaN). The reference gives NaN rows at sigma = 0 (c_noise = -inf)
        // and leaves the other samples alone.
        torch.set_num_threads(1);
        torch.manual_seed(0);
        using var net = new EctPrecond(Tiny());
        net.train();
        using var x = randn(2, 1, 16, 16);
        using (no_grad())
        {
            using var d = net.forward(x, tensor(new[] { 0f, 1f }), null);
            d.IsInvalid.Should().BeFalse();
            d[0].isnan().all().item<bool>().Should().BeTrue("sigma = 0 gives c_noise = -inf, hence NaN, as in PyTorch");
            using var x1 = x.narrow(0, 1, 1);
            using var alone = net.forward(x1, tensor(new[] { 1f }), null);
            using var d1 = d.narrow(0, 1, 1);
            GoldenDdpmppSmall.ShouldMatch(d1, alone, "the finite sample next to a sigma = 0 sample");
        }
    }

    [Fact]
    public void EdmPrecondUsesTrainingCoefficientsInBothModesAndSharesKeys()
    {
        torch.set_num_threads(1);
        torch.manual_seed(0);
        using var ect = new EctPrecond(Tiny());
        using var edm = new EdmPrecond(Tiny());
        edm.LoadStateDict(ect.ExportStateDict());
        edm.state_dict().Keys.Should().BeEquivalentTo(ect.state_dict().Keys);
        using var x = randn(2, 1, 16, 16);
        using var sigma = tensor(new[] { 0.01f, 3f });
        using (no_grad())
        {
            ect.train(); edm.train();
            GoldenDdpmppSmall.ShouldMatch(edm.forward(x, sigma, null), ect.forward(x, sigma, null), "EDM vs ECT train", 1e-6, 1e-7);
            edm.eval();
            GoldenDdpmppSmall.ShouldMatch(edm.forward(x, sigma, null), ect.forward(x, sigma, null), "EDM eval = ECT train", 1e-6, 1e-7);
        }
    }

    [Fact]
    public void ZeroDimSigmaBroadcastsAndInputIsCastToFloat32()
    {
        torch.set_num_threads(1);
        torch.manual_seed(0);
        using var net = new EctPrecond(Tiny());
        net.eval();
        using var x = randn(2, 1, 16, 16, dtype: float64);
        using (no_grad())
        {
            using var a = net.forward(x, tensor(2.5, dtype: float64), null);
            using var b = net.forward(x.to(float32), tensor(new[] { 2.5f, 2.5f }), null);
            a.dtype.Should().Be(ScalarType.Float32);
            GoldenDdpmppSmall.ShouldMatch(a, b, "0-dim vs per-sample sigma", 1e-6, 1e-7);
        }
        var badSigma = () => net.forward(x, tensor(new[] { 1f, 2f, 3f }), null);
        badSigma.Should().Throw<ArgumentException>().WithMessage("*sigma must be 0-dim, [1] or [N=2]*");
        var badX = () => net.forward(randn(2, 3, 16, 16), tensor(1f), null);
        badX.Should().Throw<ArgumentException>().WithMessage("*x must be [N,1,H,W]*");
    }

    [Fact]
    public void ExtractActivationsReturnsLiveCopiesAndTheDenoiserOutput()
    {
        torch.set_num_threads(1);
        torch.manual_seed(0);
        using var net = new EctPrecond(Tiny());
        net.eval();
        using var x = randn(2, 1, 16, 16);
        using var sigma = tensor(new[] { 0.5f, 2f });
        var act = net.ExtractActivations(x, sigma);
        act.Keys.Should().Contain(["map_noise", "map_layer0", "map_layer1", "enc.16x16_conv", "enc.8x8_down", "dec.8x8_in0", "dec.16x16_aux_conv", "D"]);
        act["enc.16x16_conv"].shape.Should().Equal(2, 16, 16, 16);
        act["dec.16x16_aux_conv"].shape.Should().Equal(2, 1, 16, 16);
        using (no_grad())
            GoldenDdpmppSmall.ShouldMatch(act["D"], net.forward(x, sigma, null), "ExtractActivations D", 1e-6, 1e-7);
        act.Values.Should().OnlyContain(t => !t.requires_grad);
    }

    [Fact]
    public void ClassLabelsDefaultToZerosWhenLabelDimIsSet()
    {
        torch.set_num_threads(1);
        torch.manual_seed(0);
        using var net = new EctPrecond(Tiny(labelDim: 5));
        net.eval();
        using (no_grad()) foreach (var (_, p) in net.named_parameters()) { using var r = randn_like(p); using var small = r.Times(0.05); p.PlusInPlace(small); }
        using var x = randn(2, 1, 16, 16);
        using var sigma = tensor(new[] { 0.5f, 1f });
        using (no_grad())
        {
            using var none = net.forward(x, sigma, null);
            using var zero = net.forward(x, sigma, zeros(2, 5));
            using var one = net.forward(x, sigma, ones(2, 5));
            GoldenDdpmppSmall.ShouldMatch(none, zero, "null labels = zero labels", 1e-6, 1e-7);
            (one - zero).abs().max().item<float>().Should().BeGreaterThan(1e-5f);
        }
        net.LabelDim.Should().Be(5);
    }

    [Fact]
    public void StrictLoadNamesTheFirstBadKeyAndLeavesTheModelUnchanged()
    {
        torch.set_num_threads(1);
        torch.manual_seed(0);
        using var net = new EctPrecond(Tiny());
        var good = net.ExportStateDict();
        var before = net.state_dict()["model.map_layer0.weight"].clone();

        var missing = new Dictionary<string, Tensor>(good);
        missing.Remove("model.dec.16x16_aux_conv.bias");
        var load = () => net.LoadStateDict(missing);
        load.Should().Throw<ArgumentException>().WithMessage("*1 missing key(s), first 'model.dec.16x16_aux_conv.bias'*");

        var unexpected = new Dictionary<string, Tensor>(good) { ["model.extra.weight"] = zeros(1) };
        load = () => net.LoadStateDict(unexpected);
        load.Should().Throw<ArgumentException>().WithMessage("*unexpected key(s), first 'model.extra.weight'*");

        var shape = new Dictionary<string, Tensor>(good) { ["model.map_layer0.weight"] = zeros(3, 3) };
        load = () => net.LoadStateDict(shape);
        load.Should().Throw<ArgumentException>().WithMessage("*shape mismatch(es), first 'model.map_layer0.weight': model [64,16], given [3,3]*");
        net.state_dict()["model.map_layer0.weight"].eq(before).all().item<bool>().Should().BeTrue("a failed load copies nothing");

        var changed = good.ToDictionary(kv => kv.Key, kv => kv.Value.Plus(1));
        net.LoadStateDict(changed);
        net.state_dict()["model.map_layer0.weight"].eq(before.Plus(1)).all().item<bool>().Should().BeTrue();
        net.parameters().Should().OnlyContain(p => p.requires_grad);
    }
}
