using Ect.Compute.Sampling;
using FluentAssertions;
using Ect.Compute.Tests.Networks.Edm2;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ect.Compute.Tests.Sampling;

/// <summary>
/// 1- and 2-step consistency sampling with the EDM2 network (golden edm2-small sample/*: the imgnet branch's
/// generator_fn on net.eval() at W0, t_max 80, mid_t 1.526 as eval_imgnet_ecm.sh, the mid-step noise injected).
/// </summary>
[Collection("TorchThreads")]
public class Edm2SamplerParityTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void OneAndTwoStepSamplesMatchReference(int threads)
    {
        torch.set_num_threads(threads);
        using var scope = NewDisposeScope();
        using var net = GoldenEdm2Small.LoadNet();
        net.train(); // the sampler switches to eval mode itself (and back)
        var t = GoldenEdm2Small.Tensors();
        var z = t.Read("sample/z");
        var labels = t.Read("sample/labels");
        var one = ConsistencySampler.Sample(net, z, [80.0], labels);
        GoldenEdm2Small.ShouldMatch(one, t.Read("sample/one_step"), $"sample/one_step ({threads} thread(s))");

        var noise = t.Read("sample/mid1.526/noise0");
        Tensor? x1 = null;
        var two = ConsistencySampler.Sample(net, z, [80.0, 1.526], labels, (step, like) =>
        {
            x1 = like.clone().DetachFromDisposeScope(); // the sampler disposes its step scope
            return noise;
        });
        GoldenEdm2Small.ShouldMatch(x1!, t.Read("sample/mid1.526/x1"), "sample/mid1.526/x1");
        GoldenEdm2Small.ShouldMatch(two, t.Read("sample/mid1.526/out"), $"sample/mid1.526/out ({threads} thread(s))");
        net.training.Should().BeTrue();
    }
}
