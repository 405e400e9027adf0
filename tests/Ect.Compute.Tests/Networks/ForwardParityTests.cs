using Ect.Compute.Networks;
using FluentAssertions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ect.Compute.Tests.Networks;

/// <summary>
/// Forward parity of SongUNet + EctPrecond with the official PyTorch ECT code (golden ddpmpp-small set):
/// every recorded activation, the raw network output and the preconditioned denoiser in both modes.
/// </summary>
[Collection("TorchThreads")]
public class ForwardParityTests
{
    [Fact]
    public void StateDictKeysEqualPyTorchKeys()
    {
        torch.set_num_threads(1);
        var golden = GoldenDdpmppSmall.Weights();
        using var net = new Ect.Compute.Preconditioning.EctPrecond(GoldenDdpmppSmall.Config());
        var ours = net.state_dict();
        ours.Keys.Except(golden.Names).Should().BeEmpty("no unexpected keys");
        golden.Names.Except(ours.Keys).Should().BeEmpty("no missing keys");
        // Parameters enumerate in PyTorch's order (optimizer state and flat parameter lists line up).
        net.named_parameters().Select(p => p.name).Should().Equal(
            golden.Names.Where(n => golden.Entries[n].Extra["kind"] == "parameter"), "parameters enumerate in PyTorch's order");
        ours.Count.Should().Be(280);
        foreach (var name in golden.Names)
            ours[name].shape.Should().Equal(golden.Entries[name].Shape, name);
        var buffers = net.named_buffers().Select(b => b.name).ToList();
        buffers.Should().HaveCount(8).And.OnlyContain(n => n.EndsWith(".resample_filter"));
        golden.Names.Where(n => golden.Entries[n].Extra["kind"] == "buffer").Should().BeEquivalentTo(buffers);
        net.parameters().Sum(p => p.numel()).Should().Be(1_752_993);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void PreconditionedOutputsMatchReference(int threads)
    {
        torch.set_num_threads(threads);
        using var scope = NewDisposeScope();
        using var net = GoldenDdpmppSmall.LoadNet();
        var t = GoldenDdpmppSmall.Tensors();
        var x = t.Read("fwd/x");
        var sigma = t.Read("fwd/sigma");
        using (no_grad())
        {
            net.train();
            GoldenDdpmppSmall.ShouldMatch(net.forward(x, sigma, null), t.Read("fwd/D_train"), "D_train");

            // Raw network output F(c_in x, ln(sigma)/4).
            var s = sigma.reshape(-1, 1, 1, 1);
            var fx = net.Model.forward(x / s.Squared().Plus(0.25).sqrt(), sigma.log().Over(4), null, null);
            GoldenDdpmppSmall.ShouldMatch(fx, t.Read("fwd/F_x"), "F_x");

            net.eval();
            GoldenDdpmppSmall.ShouldMatch(net.forward(x, sigma, null), t.Read("fwd/D_eval"), "D_eval");
            GoldenDdpmppSmall.ShouldMatch(net.forward(x, tensor(80.0f), null), t.Read("fwd/D_eval_scalar80"), "D_eval_scalar80");
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void EveryActivationMatchesReference(int threads)
    {
        torch.set_num_threads(threads);
        using var scope = NewDisposeScope();
        using var net = GoldenDdpmppSmall.LoadNet();
        net.eval();
        var t = GoldenDdpmppSmall.Tensors();
        var x = t.Read("fwd/x");
        var sigma = t.Read("fwd/sigma");
        var s = sigma.reshape(-1, 1, 1, 1);
        var cin = s.Squared().Plus(0.25).rsqrt();
        var noise = sigma.log().Over(4);

        // Mapping activations for all 4 samples.
        var all = net.Model.ExtractActivations(cin * x, noise);
        // Encoder/decoder activations for sample 1 only (sigma = 0.5).
        sigma[1].item<float>().Should().Be(0.5f);
        var one = net.Model.ExtractActivations((cin * x).narrow(0, 1, 1), noise.narrow(0, 1, 1));

        var refs = t.Names.Where(n => n.StartsWith("act/")).ToList();
        refs.Should().HaveCount(27);
        foreach (var name in refs)
        {
            var key = name["act/".Length..];
            var source = key.StartsWith("map_") ? all : one;
            source.Should().ContainKey(key);
            GoldenDdpmppSmall.ShouldMatch(source[key], t.Read(name), $"{name} ({threads} thread(s))");
        }
    }
}
