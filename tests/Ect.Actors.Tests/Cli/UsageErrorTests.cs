using Ect.Actors.Cli;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.Cli;

/// <summary>A command line the parser refuses exits with the code the verb's help gives for bad arguments.</summary>
[Collection("Console")]
public class UsageErrorTests
{
    [Theory]
    [InlineData("99999999999")]
    [InlineData("two")]
    public void Ctl_stage_with_a_value_that_is_not_an_int_exits_2_as_its_help_says(string n)
    {
        var (code, _, err) = CliHarness.Run("ctl", "stage", n, "--run-dir", Path.GetTempPath());
        code.Should().Be(CtlVerb.ExitUnreachable).And.Be(2);
        err.Should().Contain(n);
    }

    [Fact]
    public void Train_with_a_steps_value_that_is_not_a_number_exits_2_and_starts_nothing()
    {
        var dir = Path.Combine(Directory.CreateTempSubdirectory().FullName, "run");
        var (code, _, err) = CliHarness.Run("train", "--steps", "many", "--run-dir", dir);
        code.Should().Be(2);
        err.Should().Contain("many");
        Directory.Exists(dir).Should().BeFalse();
    }

    [Fact]
    public void Other_verbs_keep_their_documented_code_for_bad_arguments()
    {
        // ect eval: "User mistakes exit 1".
        CliHarness.Run("eval", "--num", "lots").Code.Should().Be(1);
    }
}
