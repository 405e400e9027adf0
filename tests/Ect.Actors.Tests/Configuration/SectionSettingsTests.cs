using Ect.Actors.Configuration;
using Ect.Actors.Engine;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.Configuration;

/// <summary>
/// The section records RunSettings builds once (ect.network, ect.edm2, ect.evaluation, ect.fake): the values the
/// engines receive, and each bad value refused by key and value before any work.
/// </summary>
public class SectionSettingsTests
{
    private static RunSettings Settings(params string[] sets) => RunSettings.From(EctConfiguration.Load(null, sets), checkData: false);

    private static Action Refused(params string[] sets) => () => Settings(sets);

    [Fact]
    public void Network_keys_become_the_record_and_the_networks_built_from_it()
    {
        var s = Settings("network.type=ncsnpp", "network.model-channels=8", "network.channel-mult=[1,2]", "network.num-blocks=2",
            "network.attn-resolutions=[8]", "network.dropout=0.2", "network.augment-dim=9", "network.init=\"\"");
        var n = s.Network;
        (n.Type, n.ModelChannels, n.NumBlocks, n.Dropout, n.AugmentDim, n.Init).Should().Be(("ncsnpp", 8, 2, 0.2, 9, ""));
        n.ChannelMult.Should().Equal(1, 2);
        n.AttnResolutions.Should().Equal(8);
        var net = n.SongUNet(16, 1, 10);
        (net.ImgResolution, net.InChannels, net.LabelDim, net.ModelChannels, net.NumBlocks, net.AugmentDim).Should().Be((16, 1, 10, 8, 2, 9));
        net.EncoderType.Should().Be(Ect.Compute.Networks.EncoderType.Residual, "ncsnpp is the residual-encoder SongUNet");
        Engines.ResolveInit(n).Should().BeNull("init = \"\" is a random start");
    }

    [Fact]
    public void Edm2_keys_become_the_record_the_edm2_engine_receives()
    {
        var s = Settings("network.type=edm2", "tuning.optimizer=adam", "tuning.c=0.06", "network.dropout-res=16",
            "edm2.adam-betas=[0.8, 0.95]", "edm2.lr-decay-batches=2000", "edm2.phema-stds=[0.05]", "edm2.phema-snapshot-every-steps=7");
        s.Edm2.Should().BeEquivalentTo(new Edm2Settings(0.8, 0.95, 2000, [0.05], 7));
        var net = s.Network.Edm2UNet(16, 1, 10);
        (net.DropoutRes, net.LabelDim, net.ImgChannels).Should().Be((16, 10, 1));
        s.NetworkType.Should().Be("edm2");
    }

    [Fact]
    public void Edm2_keys_are_not_read_for_another_network()
    {
        // Under ddpmpp the ect.edm2 section is not this run's concern (as before the records: not validated).
        var act = Refused("edm2.adam-betas=[2, 3]");
        act.Should().NotThrow();
    }

    [Theory]
    [InlineData("network.model-channels=0", "*ect.network.model-channels = 0*> 0*")]
    [InlineData("network.channel-mult=[1,0]", "*ect.network.channel-mult = [1, 0]*positive*")]
    [InlineData("network.attn-resolutions=[-8]", "*ect.network.attn-resolutions = [-8]*resolutions*")]
    [InlineData("network.dropout=1", "*ect.network.dropout = 1*[0, 1)*")]
    [InlineData("network.num-blocks=abc", "*ect.network.num-blocks = \"abc\"*not a valid value*")]
    [InlineData("data.resolution=0", "*ect.data.resolution = 0*> 0*")]
    [InlineData("fake.parameters=0", "*ect.fake.parameters = 0*>= 1*")]
    [InlineData("fake.step-ms=-1", "*ect.fake.step-ms = -1*>= 0*")]
    [InlineData("evaluation.threads=0", "*ect.evaluation.threads = 0*>= 1*")]
    [InlineData("evaluation.every-steps=-3", "*ect.evaluation.every-steps = -3*>= 0*")]
    public void A_bad_value_is_refused_naming_the_key_and_the_value(string set, string message)
    {
        Refused(set).Should().Throw<ConfigurationException>().WithMessage(message);
    }

    [Fact]
    public void Edm2_bad_values_are_all_named_in_one_refusal()
    {
        var act = Refused("network.type=edm2", "tuning.optimizer=adam", "tuning.c=0.06", "network.augment-dim=9",
            "edm2.phema-snapshot-every-steps=-1", "network.dropout-res=x");
        act.Should().Throw<ConfigurationException>()
            .WithMessage("*ect.network.augment-dim = 9*no augmentation input*")
            .WithMessage("*ect.edm2.phema-snapshot-every-steps = -1*")
            .WithMessage("*ect.network.dropout-res = \"x\"*");
    }

    [Fact]
    public void Edm2_refuses_a_huber_constant_of_zero()
    {
        Refused("network.type=edm2", "tuning.optimizer=adam", "tuning.c=0").Should().Throw<ConfigurationException>()
            .WithMessage("*ect.tuning.c = 0*Huber constant c > 0*");
    }

    [Fact]
    public void Fake_and_evaluation_records_hold_their_keys()
    {
        var s = Settings("fake.parameters=128", "fake.step-ms=5", "fake.write-ms=6", "fake.eval-ms=7", "fake.nan-at-step=9",
            "evaluation.every-steps=25", "evaluation.threads=2");
        s.Fake.Should().Be(new FakeEngineSettings(128, 5, 6, 7, 9));
        (s.Evaluation.Every, s.Evaluation.Threads).Should().Be((25L, 2));
        s.Evaluation.Evaluators.Should().ContainSingle().Which.Type.Should().Be("sample-grid");
    }
}
