using Ect.Compute.Optim;
using FluentAssertions;
using Xunit;

namespace Ect.Compute.Tests.Optim;

public class EmaTests
{
    [Fact]
    public void Fixed_beta_is_used_without_a_half_life()
        => new EmaConfig(Beta: 0.9993).BetaAt(123456, 128).Should().Be(0.9993);

    [Fact]
    public void Half_life_gives_half_weight_after_half_life_images()
    {
        var c = new EmaConfig(HalfLifeKimg: 500);
        double beta = c.BetaAt(10_000_000, 512);
        Math.Pow(beta, 500_000 / 512.0).Should().BeApproximately(0.5, 1e-12);
    }

    [Fact]
    public void Ramp_up_limits_the_half_life_early_on()
    {
        var c = new EmaConfig(HalfLifeKimg: 500, RampupRatio: 0.05);
        c.BetaAt(100_000, 512).Should().BeApproximately(Math.Pow(0.5, 512 / 5000.0), 1e-15);
        c.BetaAt(0, 512).Should().Be(0, "with no images seen the EMA copies the weights (0.5 ** (512 / 1e-8))");
        c.BetaAt(100_000_000, 512).Should().BeApproximately(Math.Pow(0.5, 512 / 500_000.0), 1e-15);
    }
}
