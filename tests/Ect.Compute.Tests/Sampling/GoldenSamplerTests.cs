using Ect.Compute.Sampling;
using Ect.Compute.Tests.Networks;
using Ect.Compute.Tests.Training;
using FluentAssertions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ect.Compute.Tests.Sampling;

/// <summary>ConsistencySampler on the golden network against the official generator_fn (eval mode, float64, 0-dim t).</summary>
[Collection(GlobalTorchStateCollection.Name)]
public class GoldenSamplerTests
{
    [Fact]
    public void One_and_two_step_samples_match_generator_fn()
    {
        torch.set_num_threads(1);
        using var scope = NewDisposeScope();
        using var net = GoldenDdpmppSmall.LoadNet();
        net.train(); // the sampler must switch to eval itself
        var t = GoldenDdpmppSmall.Tensors();
        var z = t.Read("sample/z");
        var noise = t.Read("sample/noise");

        var one = ConsistencySampler.Sample(net, z, new[] { 80.0 });
        one.dtype.Should().Be(ScalarType.Float64);
        GoldenDdpmppSmall.ShouldMatch(one, t.Read("sample/one_step"), "one-step sample");

        var two = ConsistencySampler.Sample(net, z, new[] { 80.0, 0.821 }, null, (_, _) => noise);
        GoldenDdpmppSmall.ShouldMatch(two, t.Read("sample/two_step"), "two-step sample");
        net.training.Should().BeTrue();
    }
}
