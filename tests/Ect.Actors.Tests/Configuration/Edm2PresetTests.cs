using Ect.Actors.Configuration;
using Ect.Actors.Engine;
using Ect.Compute.Networks.Edm2;
using Ect.Compute.Preconditioning;
using FluentAssertions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ect.Actors.Tests.Configuration;

/// <summary>Tests that switch torch's process-wide default device (to build networks on the meta device) run alone.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TorchDefaultDeviceCollection
{
    public const string Name = "torch default device";
}

/// <summary>
/// The ImageNet-64 presets hocon/edm2-img64-*.conf: each loads over the defaults and passes RunSettings' checks, holds
/// the imgnet branch's ct_train.py preset values (channels, lr, decay, dropout, dropres, P_mean/P_std) and the settings
/// of its run_imgnet_ecm.sh, and describes a network with the parameter count of the official code (counted there on
/// the meta device, without the log-variance head). The count here is taken on libtorch's meta device too (no 4.5 GB
/// of weights), from the network the engine builds from the configuration; the meta count is checked against real
/// builds of small networks.
/// </summary>
[Collection(TorchDefaultDeviceCollection.Name)]
public class Edm2PresetTests
{
    private static string Preset(string name) => Path.Combine(RepoRoot.Find(), "hocon", name + ".conf");

    /// <summary>Builds the EDM2 Precond on the meta device (shapes only) and counts its parameters.</summary>
    public static long CountOnMeta(Edm2UNetConfig config)
    {
        torch.set_default_device(torch.META);
        try
        {
            using var net = new Edm2Precond(config);
            net.parameters().Should().OnlyContain(p => p.device_type == DeviceType.META, "nothing was allocated");
            return net.parameters().Sum(p => p.numel());
        }
        finally { torch.set_default_device(torch.CPU); }
    }

    [Theory]
    [InlineData("edm2-img64-s-fast", 192, 0.0010, 0, 0.40, 280_209_253L)]
    [InlineData("edm2-img64-s", 192, 0.0010, 2000, 0.40, 280_209_253L)]
    [InlineData("edm2-img64-m", 256, 0.0009, 2000, 0.50, 497_803_045L)]
    [InlineData("edm2-img64-l", 320, 0.0008, 2000, 0.50, 777_492_197L)]
    [InlineData("edm2-img64-xl", 384, 0.0007, 2000, 0.50, 1_119_276_709L)]
    public void A_preset_holds_the_branchs_values_and_its_parameter_count(string name, int channels, double lr, long decay, double dropout, long parameters)
    {
        var c = EctConfiguration.LoadFiles([Preset(name)], []);
        var s = RunSettings.From(c, checkData: false); // every key known and in range
        s.NetworkType.Should().Be("edm2");
        c.GetInt("ect.network.model-channels").Should().Be(channels);
        s.TuningLr.Should().Be(lr);
        c.GetLong("ect.edm2.lr-decay-batches").Should().Be(decay);
        c.GetDouble("ect.network.dropout").Should().Be(dropout);
        c.GetInt("ect.network.dropout-res").Should().Be(16);
        c.GetDoubleList("ect.edm2.adam-betas").Should().Equal(0.9, 0.99);
        (c.GetDouble("ect.tuning.p-mean"), c.GetDouble("ect.tuning.p-std")).Should().Be((-0.8, 1.6));
        (c.GetDouble("ect.tuning.q"), c.GetDouble("ect.tuning.k"), c.GetDouble("ect.tuning.b"), c.GetDouble("ect.tuning.c")).Should().Be((4.0, 8.0, 1.0, 0.06));
        c.GetString("ect.tuning.mapping").Should().Be("sigmoid");
        c.GetString("ect.tuning.optimizer").Should().Be("adam");
        s.EmaBeta.Should().Be(0.9999);
        c.GetDoubleList("ect.edm2.phema-stds").Should().Equal(0.010, 0.050, 0.100);
        (s.BatchSize, s.UseLabels, c.GetInt("ect.data.resolution"), s.TuningSteps, s.PretrainSteps).Should().Be((128, true, 64, 100_000L, 0L),
            "run_imgnet_ecm.sh: --batch=128 --cond=1, 64x64, --duration=12.8 Mimg = 100k steps, tuning from an EDM2 checkpoint");
        (s.KimgPerTick, s.DoubleTicks).Should().Be((6.4, 500.0), "--tick=6.4 --double 500");

        var net = RunSettings.From(c, checkData: false).Network.Edm2UNet(c.GetInt("ect.data.resolution"), 3, 1000);
        (net.ChannelMult, net.NumBlocks, net.AttnResolutions).Should().BeEquivalentTo((new[] { 1, 2, 3, 4 }, 3, new[] { 16, 8 }));
        CountOnMeta(net).Should().Be(parameters, "the official Precond (imgnet branch, no log-variance head) has this many");
    }

    [Fact]
    public void The_meta_device_count_equals_a_real_build()
    {
        var golden = new Edm2UNetConfig // tests/golden/edm2-small: 723,563 parameters in PyTorch
        {
            ImgResolution = 16, ImgChannels = 3, LabelDim = 10, ModelChannels = 32, ChannelMult = [1, 2], NumBlocks = 1,
            AttnResolutions = [8], Dropout = 0.1, DropoutRes = 8,
        };
        var withHeads = golden with { ModelChannels = 64, ChannelMult = [1, 2, 3], AttnResolutions = [8, 4], LabelDim = 0, NumBlocks = 2 };
        foreach (var config in new[] { golden, withHeads })
        {
            torch.set_num_threads(1);
            using var real = new Edm2Precond(config);
            long count = real.parameters().Sum(p => p.numel());
            CountOnMeta(config).Should().Be(count);
            if (config == golden) count.Should().Be(723_563);
        }
        new Edm2Precond(golden).parameters().First().device_type.Should().Be(DeviceType.CPU, "the default device is back to the CPU");
    }

    [Fact]
    public void Edm2_keys_out_of_range_are_refused_by_name()
    {
        var c = EctConfiguration.LoadFiles([Preset("edm2-img64-s")],
            ["edm2.phema-stds=[0.3]", "edm2.adam-betas=[0.9]", "network.dropout-res=-1", "tuning.optimizer=radam", "edm2.lr-decay-batches=-5"]);
        var act = () => RunSettings.From(c, checkData: false);
        act.Should().Throw<ConfigurationException>()
            .WithMessage("*ect.edm2.phema-stds*0.3*")
            .WithMessage("*ect.edm2.adam-betas*")
            .WithMessage("*ect.network.dropout-res*-1*")
            .WithMessage("*ect.tuning.optimizer*adam*")
            .WithMessage("*ect.edm2.lr-decay-batches*-5*");
        var unknown = () => EctConfiguration.LoadFiles([Preset("edm2-img64-s")], ["network.type=edm3"]);
        unknown.Should().NotThrow("the value is checked by RunSettings");
        var bad = () => RunSettings.From(EctConfiguration.LoadFiles([Preset("edm2-img64-s")], ["network.type=edm3"]), checkData: false);
        bad.Should().Throw<ConfigurationException>().WithMessage("*ect.network.type*edm3*edm2*");
    }
}
