using Ect.Actors.Configuration;
using Ect.Compute.Losses;
using Ect.Compute.Optim;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.Configuration;

/// <summary>The pretraining and tuning keys arrive as typed values (what Engines.Torch builds the engine from).</summary>
public class TrainingSettingsTests
{
    private static RunSettings Settings(params string[] sets) => RunSettings.From(EctConfiguration.Load(null, sets), checkData: false);

    [Fact]
    public void Defaults_are_default_conf_values()
    {
        var s = Settings();
        s.Pretrain.Should().Be(new PretrainSettings(-1.2, 1.2));
        s.Tuning.Should().Be(new TuningSettings(OptimizerKind.RAdam, -1.1, 2.0, MappingKind.Sigmoid, 2.0, 8.0, 1.0, 0.0));
    }

    [Fact]
    public void Set_keys_become_the_typed_values()
    {
        var s = Settings("tuning.optimizer=adam", "tuning.mapping=const", "tuning.q=4", "tuning.c=0.06", "pretrain.p-std=1.5");
        s.Tuning.Should().Be(new TuningSettings(OptimizerKind.Adam, -1.1, 2.0, MappingKind.Const, 4.0, 8.0, 1.0, 0.06));
        s.Pretrain.PStd.Should().Be(1.5);
    }

    [Fact]
    public void A_value_that_is_not_a_number_is_refused_with_its_key()
    {
        var act = () => Settings("tuning.k=abc");
        act.Should().Throw<ConfigurationException>().WithMessage("*ect.tuning.k*abc*");
    }
}
