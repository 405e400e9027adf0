using Ect.Actors.Configuration;
using Ect.Actors.Engine;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests;

/// <summary>
/// README's first command is `ect train` on the built-in defaults: they must pass every check a start makes before any
/// work, with the shipped teacher as initial weights (a change of a network default once made that check refuse the
/// teacher, and only a real `ect train` showed it).
/// </summary>
public class DefaultRunStartsTests
{
    [Fact]
    public void The_default_configuration_passes_the_start_checks_with_the_shipped_teacher()
    {
        var settings = RunSettings.From(EctConfiguration.Load(null, []), checkData: false);
        settings.Engine.Should().Be("torch");
        Engines.ResolveInit(settings.Network).Should().NotBeNull().And.EndWith("fashion-mnist-ddpmpp16.safetensors");
        var dir = Directory.CreateTempSubdirectory("ect-default-").FullName;
        var check = () => Engines.Check(settings, dir);
        check.Should().NotThrow("the defaults describe the shipped teacher's network");
    }
}
