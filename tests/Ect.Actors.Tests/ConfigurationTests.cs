using Ect.Actors.Configuration;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests;

public class ConfigurationTests
{
    [Fact]
    public void Defaults_are_valid_and_layers_apply_in_order()
    {
        var file = Path.GetTempFileName();
        File.WriteAllText(file, "ect.data.batch-size = 8\nect.tuning.q = 4.0\n");
        var c = EctConfiguration.Load(file, ["data.batch-size=16"]);
        var s = RunSettings.From(c, checkData: false);
        s.BatchSize.Should().Be(16, "--set overrides --config");
        c.GetDouble("ect.tuning.q").Should().Be(4.0, "--config overrides the defaults");
        s.CheckpointEvery.Should().Be(100, "untouched keys keep their default");
        s.Evaluation.Evaluators.Should().ContainSingle().Which.SamplingSteps.Should().Equal(1, 2);
    }

    [Fact]
    public void Unknown_keys_are_refused_naming_the_key()
    {
        var act = () => EctConfiguration.Load(null, ["ect.data.batchsize=3"]);
        act.Should().Throw<ConfigurationException>().WithMessage("*ect.data.batchsize*");
    }

    [Theory]
    [InlineData("data.batch-size=-4", "ect.data.batch-size")]
    [InlineData("network.type=transformer", "ect.network.type")]
    [InlineData("ema.beta=1.5", "ect.ema.beta")]
    [InlineData("checkpoint.every-steps=abc", "ect.checkpoint.every-steps")]
    [InlineData("data.path=/nonexistent/fashion", "ect.data.path")]
    [InlineData("evaluation.threads=0", "ect.evaluation.threads")]
    public void Wrong_values_are_refused_before_work_naming_the_key(string set, string key)
    {
        var c = EctConfiguration.Load(null, [set]);
        var act = () => RunSettings.From(c);
        act.Should().Throw<ConfigurationException>().WithMessage($"*{key}*");
    }

    [Fact]
    public void Show_documents_every_key_with_its_resolved_value()
    {
        var c = EctConfiguration.Load(null, ["data.batch-size=48"]);
        var text = EctConfiguration.Show(c);
        text.Should().Contain("batch-size = 48").And.Contain("# Images per training step");
        var lines = text.Split('\n');
        foreach (var key in EctConfiguration.LeafKeys(EctConfiguration.Defaults()))
        {
            var leaf = key.Split('.')[^1];
            var i = Array.FindIndex(lines, l => l.TrimStart().StartsWith(leaf + " = ", StringComparison.Ordinal));
            i.Should().BeGreaterThan(0, $"{key} is printed");
            // A comment documents the key: in the lines just above it (a group of keys shares one).
            lines.Take(i).Reverse().TakeWhile(l => !l.Contains('{') || l.Contains('=')).Take(6)
                .Any(l => l.TrimStart().StartsWith('#')).Should().BeTrue($"{key} is documented");
        }
        // What show prints parses back to the same configuration.
        var reparsed = Akka.Configuration.ConfigurationFactory.ParseString(text);
        EctConfiguration.Render(reparsed).Should().Be(EctConfiguration.Render(c));
    }

    [Fact]
    public void Live_changes_are_checked_by_key_and_value()
    {
        var c = EctConfiguration.Load(null, []);
        RunSettings.CheckLiveChange(c, "ect.tuning.lr", "2e-4").Should().BeNull();
        RunSettings.CheckLiveChange(c, "tuning.lr", "-1").Should().Contain("ect.tuning.lr");
        RunSettings.CheckLiveChange(c, "ect.tuning.nope", "1").Should().Contain("unknown configuration key 'ect.tuning.nope'");
        RunSettings.CheckLiveChange(c, "ect.data.batch-size", "8").Should().Contain("cannot be changed");
    }
}
