using Ect.Actors.Configuration;
using Ect.Compute.Preconditioning;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.Configuration;

/// <summary>
/// The teacher recipes hocon/teacher-fashion-mnist*.conf pretrain from random weights. hocon/default.conf starts every
/// run from the shipped teacher (ect.network.init), so a teacher file that does not set init = "" would "pretrain"
/// the shipped teacher's weights further (the 16-channel file did, from the day init got its default until
/// session 13), or refuse to start (the 32-channel one: another architecture).
/// </summary>
public class TeacherConfigTests
{
    private static string File(string name) => Path.Combine(RepoRoot.Find(), "hocon", name + ".conf");

    [Theory]
    [InlineData("teacher-fashion-mnist", 16, 308_545L)] // trainable parameters; the shipped file holds 308,577 values with the buffers
    [InlineData("teacher-fashion-mnist-32", 32, 1_225_857L)]
    public void A_teacher_recipe_pretrains_its_network_from_random_weights(string name, int channels, long parameters)
    {
        var c = EctConfiguration.LoadFiles([File(name)], []);
        var s = RunSettings.From(c, checkData: false);
        s.Network.Init.Should().BeEmpty("a teacher is pretrained from a random initialisation, not from the shipped teacher");
        (s.PretrainSteps, s.TuningSteps, s.BatchSize).Should().Be((5000L, 0L, 64), "EDM pretraining only: 320 kimg");
        s.Network.ModelChannels.Should().Be(channels);
        using var net = new EctPrecond(s.Network.SongUNet(32, 1, 0));
        net.parameters().Sum(p => p.numel()).Should().Be(parameters);
    }
}
