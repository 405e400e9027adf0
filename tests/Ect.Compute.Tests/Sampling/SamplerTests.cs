using Ect.Compute.Preconditioning;
using Ect.Compute.Sampling;
using Ect.Compute.Tests.Training;
using FluentAssertions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ect.Compute.Tests.Sampling;

[Collection(GlobalTorchStateCollection.Name)]
public class SamplerTests
{
    /// <summary>The exact denoiser for data ~ N(0, s^2 I): D(x, sigma) = x s^2 / (s^2 + sigma^2); counts calls and records inputs.</summary>
    private sealed class GaussianDenoiser(double s) : Precond("gauss")
    {
        public int Calls;
        public readonly List<(ScalarType XType, long[] SigmaShape, double Sigma, bool Training)> Seen = new();
        public override double SigmaData => s;
        public override int ImgResolution => 4;
        public override int ImgChannels => 1;
        public override int LabelDim => 0;
        public override Tensor forward(Tensor x, Tensor sigma, Tensor? classLabels)
        {
            Calls++;
            Seen.Add((x.dtype, sigma.shape, sigma.to(float64).flatten()[0].item<double>(), training));
            var sg = sigma.to(float64).reshape(-1, 1, 1, 1);
            return (x.to(float64).Times(s * s) / sg.Squared().Plus(s * s)).to(float32);
        }
    }

    [Fact]
    public void Heun_has_the_edm_time_steps()
    {
        var t = HeunSampler.TimeSteps(new HeunSamplerConfig());
        t.Should().HaveCount(19);
        t[0].Should().BeApproximately(80, 1e-12);
        t[17].Should().BeApproximately(0.002, 1e-15);
        t[18].Should().Be(0);
        t.Zip(t.Skip(1), (a, b) => a > b).Should().OnlyContain(decreasing => decreasing);
    }

    [Fact]
    public void Heun_solves_the_gaussian_probability_flow_ode_with_35_evaluations()
    {
        torch.set_num_threads(1);
        const double s = 0.5;
        var net = new GaussianDenoiser(s);
        net.train();
        using var z = randn(new long[] { 2, 1, 4, 4 }, generator: new Generator(3));
        using var x = HeunSampler.Sample(net, z);
        net.Calls.Should().Be(35);
        net.training.Should().BeTrue("the sampler restores the module's mode");
        net.Seen.Should().OnlyContain(v => !v.Training && v.XType == ScalarType.Float64 && v.SigmaShape.Length == 0);
        x.dtype.Should().Be(ScalarType.Float64);
        // An independent scalar Heun recomputation of the same schedule (every pixel follows x -> x * c).
        var t = HeunSampler.TimeSteps(new HeunSamplerConfig());
        double xs = 80;
        Func<double, double, double> d = (v, sg) => v * s * s / (s * s + sg * sg);
        for (int i = 0; i < 18; i++)
        {
            double dc = (xs - d(xs, t[i])) / t[i], xn = xs + (t[i + 1] - t[i]) * dc;
            if (i < 17) xn = xs + (t[i + 1] - t[i]) * (0.5 * dc + 0.5 * (xn - d(xn, t[i + 1])) / t[i + 1]);
            xs = xn;
        }
        using var expected = z.to(float64).Times(xs);
        ((x - expected).abs().max() / expected.abs().max()).item<double>().Should().BeLessThan(1e-6);

        // With many steps it converges to the exact ODE solution x(0) = x(T) s / sqrt(s^2 + T^2).
        using var fine = HeunSampler.Sample(net, z, new HeunSamplerConfig(NumSteps: 256));
        using var exact = z.to(float64).Times(80).Times(s).Over(Math.Sqrt(s * s + 6400));
        ((fine - exact).abs().max() / exact.abs().max()).item<double>().Should().BeLessThan(1e-3);
    }

    [Fact]
    public void Heun_churn_adds_noise_from_the_generator()
    {
        var net = new GaussianDenoiser(0.5);
        using var z = randn(new long[] { 1, 1, 4, 4 }, generator: new Generator(3));
        var cfg = new HeunSamplerConfig(NumSteps: 6, SChurn: 10);
        using var a = HeunSampler.Sample(net, z, cfg, generator: new Generator(1));
        using var b = HeunSampler.Sample(net, z, cfg, generator: new Generator(1));
        using var c = HeunSampler.Sample(net, z, cfg, generator: new Generator(2));
        a.data<double>().ToArray().Should().Equal(b.data<double>().ToArray());
        (a - c).abs().max().item<double>().Should().BeGreaterThan(1e-6);
    }

    [Fact]
    public void Consistency_one_and_two_steps_follow_generator_fn()
    {
        torch.set_num_threads(1);
        using var net = new TinyPrecond(dropout: 0.3);
        net.train();
        using var z = randn(new long[] { 2, 1, 8, 8 }, generator: new Generator(5));
        using var noise = randn(new long[] { 2, 1, 8, 8 }, generator: new Generator(6));

        using var one = ConsistencySampler.Sample(net, z, new[] { 80.0 });
        net.training.Should().BeTrue();
        one.dtype.Should().Be(ScalarType.Float64);
        net.eval();
        using var d80 = net.call(z.to(float64).Times(80.0), tensor(80.0, dtype: float64), null).to(float64);
        one.data<double>().ToArray().Should().Equal(d80.data<double>().ToArray());

        using var two = ConsistencySampler.Sample(net, z, new[] { 80.0, 0.821 }, null, (i, x) => { i.Should().Be(1); return noise; });
        using var x1 = d80.Plus(noise.to(float64).Times(0.821));
        using var d2 = net.call(x1, tensor(0.821, dtype: float64), null).to(float64);
        two.data<double>().ToArray().Should().Equal(d2.data<double>().ToArray());
    }

    [Fact]
    public void Consistency_rejects_bad_time_lists()
    {
        using var net = new TinyPrecond();
        using var z = zeros(1, 1, 8, 8);
        FluentActions.Invoking(() => ConsistencySampler.Sample(net, z, Array.Empty<double>())).Should().Throw<ArgumentException>();
        FluentActions.Invoking(() => ConsistencySampler.Sample(net, z, new[] { 1.0, 2.0 })).Should().Throw<ArgumentException>().WithMessage("*decrease*");
    }
}
