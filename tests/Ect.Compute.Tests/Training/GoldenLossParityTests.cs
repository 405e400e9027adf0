using Ect.Compute.IO;
using Ect.Compute.Losses;
using Ect.Compute.Tests.Networks;
using FluentAssertions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ect.Compute.Tests.Training;

/// <summary>
/// EctLoss on the golden network against the official ECMLoss: stage 1, q=2, k=8, b=1, c=0, sigmoid mapping,
/// train mode, dropout 0, with the reference's two randn draws replaced by loss/rnd_normal and loss/eps.
/// </summary>
[Collection(GlobalTorchStateCollection.Name)]
public class GoldenLossParityTests
{
    [Fact]
    public void Per_sample_loss_and_all_272_gradients_match_the_reference()
    {
        torch.set_num_threads(1);
        using var scope = NewDisposeScope();
        using var net = GoldenDdpmppSmall.LoadNet();
        net.train();
        foreach (var p in net.parameters()) p.requires_grad = true;
        var t = GoldenDdpmppSmall.Tensors();
        var y = t.Read("loss/y");
        var loss = new EctLoss(new MappingFunction(MappingKind.Sigmoid, q: 2, k: 8, b: 1, stage: 1), pMean: -1.1, pStd: 2.0, c: 0);

        // The mapping on the golden t reproduces loss/r (r == 0 for the first two samples).
        using (var r = loss.Mapping.TToR(t.Read("loss/t")))
            GoldenDdpmppSmall.ShouldMatch(r, t.Read("loss/r"), "r = t_to_r(t)", rtol: 1e-6, atolScale: 1e-7);

        var perSample = loss.Compute(net, y, null, t.Read("loss/rnd_normal"), t.Read("loss/eps"));
        GoldenDdpmppSmall.ShouldMatch(perSample.detach(), t.Read("loss/loss"), "per-sample ECT loss", rtol: 1e-4, atolScale: 0);

        net.zero_grad();
        perSample.mean().backward();
        var golden = new RawTensorFolder(Path.Combine(GoldenDdpmppSmall.Dir, "grads.json"));
        var ps = net.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        golden.Names.Should().HaveCount(272);
        foreach (var name in golden.Names)
        {
            ps.Should().ContainKey(name);
            var g = ps[name].grad;
            g.Should().NotBeNull(name);
            GoldenDdpmppSmall.ShouldMatch(g!, golden.Read(name), $"grad {name}", rtol: 1e-3, atolScale: 1e-4);
        }
    }
}
