using Akka.Configuration;
using Ect.Actors.Configuration;
using Ect.Actors.Engine;
using FluentAssertions;
using Xunit;
using ConfigurationException = Ect.Actors.Configuration.ConfigurationException;

namespace Ect.Actors.Tests.Configuration;

/// <summary>Configuration mistakes that used to be accepted: each is refused before any work, naming the key or the line.</summary>
public sealed class StrictConfigurationTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ect-conf-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private string Write(string text)
    {
        var path = Path.Combine(_dir, "run.conf");
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void Akkas_parser_alone_drops_the_keys_after_a_brace_too_many()
    {
        // Why the check exists: without it the second key silently vanishes.
        var c = ConfigurationFactory.ParseString("ect { run { seed = 5 } }\n}\nect.tuning.lr = 3e-4\n");
        c.GetInt("ect.run.seed").Should().Be(5);
        c.HasPath("ect.tuning.lr").Should().BeFalse();
    }

    [Fact]
    public void A_config_file_with_a_closing_brace_too_many_is_refused_naming_file_and_line()
    {
        var path = Write("ect {\n  run { seed = 5 }\n}\n}\nect.tuning.lr = 3e-4\n");
        var act = () => EctConfiguration.Load(path, []);
        act.Should().Throw<ConfigurationException>().WithMessage($"*--config {path}, line 4*'}}' closes nothing*");
    }

    [Fact]
    public void A_config_file_with_an_unclosed_brace_is_refused_naming_the_line_it_opened()
    {
        var path = Write("ect {\n  run {\n    seed = 5\n}\n");
        var act = () => EctConfiguration.Load(path, []);
        act.Should().Throw<ConfigurationException>().WithMessage($"*--config {path}, line 1*'{{' opened here is never closed*");
    }

    [Fact]
    public void A_mismatched_bracket_is_refused()
    {
        var path = Write("ect {\n  network.channel-mult = [1, 2}\n}\n");
        var act = () => EctConfiguration.Load(path, []);
        act.Should().Throw<ConfigurationException>().WithMessage("*line 2*'}' here closes the '[' opened on line 2*");
    }

    [Fact]
    public void Brackets_inside_strings_comments_and_substitutions_do_not_count()
    {
        var path = Write("""
            # a comment with } and {{
            // another ] one
            ect {
              data.path = "/data/{odd} name]"
              network.init = ""
              run.engine = fake
              persistence.connection-string = \"\"\"multi
            line } with brackets {\"\"\"
            }
            """.Replace("\\\"", "\""));
        var c = EctConfiguration.Load(path, []);
        c.GetString("ect.data.path").Should().Be("/data/{odd} name]");
        c.GetString("ect.run.engine").Should().Be("fake");
        FluentActions.Invoking(() => HoconSyntaxCheck.Check("a = 1\nb = ${a}\nc { d = [${a}] }\n", "t")).Should().NotThrow();
    }

    [Fact]
    public void An_unclosed_list_in_a_set_is_refused()
    {
        var act = () => EctConfiguration.Load(null, ["network.channel-mult=[1,2"]);
        act.Should().Throw<ConfigurationException>().WithMessage("*--set 'network.channel-mult=[1,2'*never closed*");
    }

    [Fact]
    public void Every_shipped_configuration_file_passes_the_check()
    {
        var hocon = Path.Combine(RepoRoot.Find(), "hocon");
        Directory.GetFiles(hocon, "*.conf").Should().NotBeEmpty();
        foreach (var f in Directory.GetFiles(hocon, "*.conf"))
            FluentActions.Invoking(() => HoconSyntaxCheck.Check(File.ReadAllText(f), f)).Should().NotThrow(f);
    }

    [Theory]
    [InlineData(-5)]
    [InlineData(-1)]
    public void A_negative_max_images_is_refused_naming_the_key(int n)
    {
        var act = () => RunSettings.From(EctConfiguration.Load(null, ["run.engine=fake", $"data.max-images={n}"]), checkData: false);
        act.Should().Throw<ConfigurationException>().WithMessage($"*ect.data.max-images = {n}: must be >= 0*");
    }

    [Fact]
    public void Max_images_zero_means_all_and_is_accepted()
    {
        RunSettings.From(EctConfiguration.Load(null, ["run.engine=fake", "data.max-images=0"]), checkData: false)
            .Config.GetInt("ect.data.max-images").Should().Be(0);
    }

    [Fact]
    public void A_bad_resolution_for_train_suggests_the_configuration_key_not_a_missing_option()
    {
        var s = RunSettings.From(EctConfiguration.Load(null, ["data.resolution=30", "network.init=\"\""]), checkData: false);
        var act = () => Engines.Check(s);
        var e = act.Should().Throw<ConfigurationException>().Which;
        e.Message.Should().Contain("ect.data.resolution").And.Contain("--set ect.data.resolution=32");
        e.Message.Should().NotContain("--resolution ", "`ect train` has no --resolution option");
    }
}
