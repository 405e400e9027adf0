using FluentAssertions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ect.Compute.Tests.Networks;

/// <summary>
/// Backward parity of the network against the golden d(mean ECM loss)/d(param) for all 272 parameters.
/// The loss is re-stated inline from the golden README (r and t given), so this checks the network's
/// gradients, not a loss implementation.
/// </summary>
[Collection("TorchThreads")]
public class GradientParityTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void ParameterGradientsMatchReference(int threads)
    {
        torch.set_num_threads(threads);
        using var scope = NewDisposeScope();
        using var net = GoldenDdpmppSmall.LoadNet();
        net.train();
        var t = GoldenDdpmppSmall.Tensors();
        var y = t.Read("loss/y");
        var eps = t.Read("loss/eps");
        var tt = t.Read("loss/t");
        var r = t.Read("loss/r");
        var t4 = tt.reshape(-1, 1, 1, 1);
        var r4 = r.reshape(-1, 1, 1, 1);

        Tensor target;
        using (no_grad())
        {
            // r == 0 -> the target is y itself; the reference evaluates D only where r > 0.
            using var tiny = 1e-8f.ToScalar();
            var dyr = net.forward(y.Plus(r4 * eps), r.clamp_min(tiny), null);
            target = where(r4.gt(ScalarConstants.Zero), dyr, y);
        }
        var dyt = net.forward(y.Plus(t4 * eps), tt, null);
        var perSample = (dyt - target).Squared().sum([1, 2, 3]).sqrt() / (tt - r);
        GoldenDdpmppSmall.ShouldMatch(perSample.detach(), t.Read("loss/loss"), "per-sample ECM loss", 1e-4, 1e-5);
        net.zero_grad();
        perSample.mean().backward();

        var golden = new Ect.Compute.IO.RawTensorFolder(Path.Combine(GoldenDdpmppSmall.Dir, "grads.json"));
        var parameters = net.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        golden.Names.Should().HaveCount(272);
        parameters.Keys.Should().BeEquivalentTo(golden.Names);
        foreach (var name in golden.Names)
        {
            var grad = parameters[name].grad;
            grad.Should().NotBeNull(name);
            GoldenDdpmppSmall.ShouldMatch(grad!, golden.Read(name), $"grad {name} ({threads} thread(s))", rtol: 1e-3, atolScale: 1e-4);
        }
    }
}
