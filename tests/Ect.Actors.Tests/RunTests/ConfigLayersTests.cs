using Ect.Actors.Configuration;
using Ect.Actors.Persistence;
using Ect.Actors.Persistence.Events;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.RunTests;

/// <summary>
/// Several --config files, layered in order (a later file overrides an earlier one, --set overrides all), for
/// `ect train` and `ect config show` (System.CommandLine used to refuse a second --config).
/// </summary>
[Collection("Console")]
public class ConfigLayersTests
{
    private static (string First, string Second) TwoFiles()
    {
        var dir = Directory.CreateTempSubdirectory("ect-layers-").FullName;
        var first = Path.Combine(dir, "first.conf");
        var second = Path.Combine(dir, "second.conf");
        File.WriteAllText(first, """
            ect {
              run.engine = fake
              pretrain.steps = 7
              tuning.steps = 5
              checkpoint.every-steps = 4
              data.batch-size = 8
              tuning.q = 3
              evaluation.evaluators = []
              display.mode = off
              control.enabled = off
            }
            """);
        File.WriteAllText(second, "ect.data.batch-size = 16\nect.tuning.q = 5\n");
        return (first, second);
    }

    [Fact]
    public void Config_files_layer_in_order_and_set_overrides_them_all()
    {
        var (first, second) = TwoFiles();
        var c = EctConfiguration.LoadFiles([first, second], ["tuning.q=6"]);
        c.GetInt("ect.data.batch-size").Should().Be(16, "the second file overrides the first");
        c.GetDouble("ect.tuning.q").Should().Be(6, "--set overrides every file");
        c.GetInt("ect.pretrain.steps").Should().Be(7, "keys only the first file sets stay");
        EctConfiguration.LoadFiles([second, first], []).GetInt("ect.data.batch-size").Should().Be(8, "order decides");

        var act = () => EctConfiguration.LoadFiles([first, first + ".missing"], []);
        act.Should().Throw<ConfigurationException>().WithMessage("*--config*first.conf.missing*not found*");
    }

    [Fact]
    public void Config_show_takes_several_config_files()
    {
        var (first, second) = TwoFiles();
        var (code, output, err) = CliHarness.Run("config", "show", "--config", first, "--config", second, "--set", "tuning.q=6");
        code.Should().Be(0, err);
        output.Should().Contain("batch-size = 16").And.Contain("q = 6").And.Contain("steps = 7");
    }

    [Fact]
    public void Train_takes_several_config_files_and_runs_with_their_layers()
    {
        var (first, second) = TwoFiles();
        var dir = Path.Combine(Path.GetDirectoryName(first)!, "run");
        var (code, output, err) = CliHarness.Run("train", "--config", first, "--config", second, "--set", "tuning.q=6", "--run-dir", dir);
        code.Should().Be(0, output + err);
        err.Should().NotContain("expects a single argument");
        var config = EctConfiguration.FromJournal(RunJournal.Events<RunStarted>(RunJournal.Read(dir)).Single().ConfigHocon);
        (config.GetInt("ect.data.batch-size"), config.GetDouble("ect.tuning.q"), config.GetString("ect.run.engine"))
            .Should().Be((16, 6.0, "fake"));
        RunJournal.Events<RunFinished>(RunJournal.Read(dir)).Should().ContainSingle().Which.Step.Should().Be(12);
        output.Should().Contain(Ect.Actors.Run.RunIdentity.Read(dir)!.Id, "the run id is printed at start");
    }
}
