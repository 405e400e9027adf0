using Ect.Compute.IO;
using Ect.Compute.Networks.Edm2;
using Ect.Compute.Preconditioning;
using FluentAssertions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ect.Compute.Tests.Networks.Edm2;

/// <summary>The EDM2 U-Net's structure against the official code's: state-dict keys and order, heads, dropout_res, loading.</summary>
[Collection("TorchThreads")]
public class Edm2StructureTests
{
    [Fact]
    public void StateDictKeysOrderAndCountsEqualPyTorchs()
    {
        torch.set_num_threads(1);
        var golden = GoldenEdm2Small.Weights();
        var meta = GoldenEdm2Small.Meta();
        using var net = new Edm2Precond(GoldenEdm2Small.Config());
        var ours = net.state_dict();
        ours.Keys.Should().BeEquivalentTo(golden.Names);
        ours.Count.Should().Be(meta["num_state_dict_tensors"]!.GetValue<int>());
        foreach (var name in golden.Names)
            ours[name].shape.Should().Equal(golden.Entries[name].Shape, name);
        net.named_parameters().Select(p => p.name).Should().Equal(
            meta["param_names"]!.AsArray().Select(v => v!.GetValue<string>()), "parameters enumerate in PyTorch's order");
        net.named_buffers().Select(b => b.name).Should().BeEquivalentTo(["unet.emb_fourier.freqs", "unet.emb_fourier.phases"]);
        net.parameters().Sum(p => p.numel()).Should().Be(meta["num_params"]!.GetValue<long>());
    }

    [Fact]
    public void HeadsAndDropoutPerBlockFollowTheOfficialRules()
    {
        var meta = GoldenEdm2Small.Meta();
        using var net = new Edm2Precond(GoldenEdm2Small.Config());
        var heads = net.Unet.Blocks.ToDictionary(b => "unet." + b.Path, b => b.NumHeads);
        var dropout = net.Unet.Blocks.ToDictionary(b => "unet." + b.Path, b => b.Dropout);
        heads.Should().BeEquivalentTo(meta["block_num_heads"]!.AsObject().ToDictionary(kv => kv.Key, kv => kv.Value!.GetValue<int>()));
        dropout.Should().BeEquivalentTo(meta["block_dropout"]!.AsObject().ToDictionary(kv => kv.Key, kv => kv.Value!.GetValue<double>()));

        // 0 heads = no attention even when asked (channels < channels_per_head); dropout_res 0 = dropout everywhere.
        using var narrow = new Edm2UNet(GoldenEdm2Small.Config() with { ModelChannels = 16, DropoutRes = 0 });
        narrow.Blocks.Should().OnlyContain(b => b.NumHeads == 0 && b.AttnQkv == null && b.Dropout == 0.1);
    }

    [Fact]
    public void WeightsLoadByNameFromTheSafetensorsFileAsFromTheRawFiles()
    {
        var golden = GoldenEdm2Small.Weights();
        var st = Safetensors.Read(Path.Combine(GoldenEdm2Small.Dir, "weights.safetensors"));
        using var net = new Edm2Precond(GoldenEdm2Small.Config());
        net.LoadStateDict(st.Tensors);
        foreach (var (name, p) in net.state_dict())
            GoldenEdm2Small.BitwiseEqual(p, golden.Read(name)).Should().BeTrue($"{name} loaded from weights.safetensors equals weights/{name}.bin");
        net.Unet.OutGain.dim().Should().Be(0, "gains are 0-dim as in PyTorch");
    }

    [Fact]
    public void MissingOrMisshapenKeysAreRefusedByName()
    {
        var w = GoldenEdm2Small.Weights().ReadAll();
        using var net = new Edm2Precond(GoldenEdm2Small.Config());
        w.Remove("unet.out_gain");
        var act = () => net.LoadStateDict(w);
        act.Should().Throw<ArgumentException>().WithMessage("*missing*unet.out_gain*");
        w["unet.out_gain"] = zeros(1);
        act.Should().Throw<ArgumentException>().WithMessage("*shape*unet.out_gain*");
    }

    [Fact]
    public void BadConfigurationsAndInputsAreRefusedWithTheValue()
    {
        var bad = () => new Edm2UNet(GoldenEdm2Small.Config() with { ImgResolution = 10, ChannelMult = [1, 2, 2] });
        bad.Should().Throw<ArgumentException>().WithMessage("*img_resolution 10*");
        bad = () => new Edm2UNet(GoldenEdm2Small.Config() with { Dropout = 1.5 });
        bad.Should().Throw<ArgumentException>().WithMessage("*dropout*1.5*");

        using var scope = NewDisposeScope();
        using var net = new Edm2Precond(GoldenEdm2Small.Config());
        var x = zeros(4, 3, 16, 16);
        var call = () => net.forward(x, ones(4), zeros(3, 10));
        call.Should().Throw<ArgumentException>().WithMessage("*class labels*[N=4,10]*[3,10]*");
        call = () => net.forward(zeros(4, 1, 16, 16), ones(4), null);
        call.Should().Throw<ArgumentException>().WithMessage("*x must be [N,3,H,W]*");
        call = () => net.forward(x, ones(3), null);
        call.Should().Throw<ArgumentException>().WithMessage("*sigma*[3]*");
    }
}
