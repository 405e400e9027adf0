using Ect.Compute.Optim;
using Ect.Compute.Tests.Training;
using FluentAssertions;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace Ect.Compute.Tests.Optim;

/// <summary>The golden radam/* run: 20 RAdam steps (torch 1.13), gradient sanitising at step 6, EMA lerp 0.9.</summary>
[Collection(Ect.Compute.Tests.Training.GlobalTorchStateCollection.Name)]
public class RAdamGoldenTests
{
    private sealed class OneParam : nn.Module
    {
        public readonly Parameter W;
        public OneParam(Tensor init) : base("one") { W = new Parameter(init.clone()); register_parameter("w", W); }
    }

    [Fact]
    public void Twenty_steps_match_torch_radam_cleaner_and_ema()
    {
        torch.set_num_threads(1);
        using var p0 = TrainGolden.Load("radam/p0");
        using var grads = TrainGolden.Load("radam/grads");
        using var expParams = TrainGolden.Load("radam/params");
        using var expEma = TrainGolden.Load("radam/ema");
        using (no_grad()) grads[6].isfinite().all().item<bool>().Should().BeFalse("step index 6 of the golden run carries nan/inf");

        var net = new OneParam(p0);
        var ema = new OneParam(p0);
        var opt = OptimizerFactory.Create(new OptimizerConfig(OptimizerKind.RAdam, 1e-2, 0.9, 0.999, 1e-8), net.parameters());
        for (int s = 0; s < 20; s++)
        {
            net.W.grad = grads[s].clone();
            long bad = GradientCleaner.Clean(net.parameters());
            if (s == 6) bad.Should().BeGreaterThan(0); else bad.Should().Be(0);
            opt.Step();
            Ect.Compute.Optim.Ema.Update(net, ema, 0.9);
            AssertClose(net.W, expParams[s], $"params after step {s + 1}");
            AssertClose(ema.W, expEma[s], $"ema after step {s + 1}");
        }
    }

    private static void AssertClose(Tensor got, Tensor exp, string what)
    {
        using var diff = (got.detach() - exp).abs();
        using var tol = exp.abs().Times(1e-5).Plus(1e-6);
        (diff <= tol).all().item<bool>().Should().BeTrue($"{what}: max |diff| {diff.max().item<float>()}");
    }

    [Fact]
    public void Gradient_cleaner_replaces_nan_and_inf_in_place()
    {
        var net = new OneParam(zeros(4));
        net.W.grad = tensor(new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity, 2.5f });
        var before = net.W.grad;
        GradientCleaner.AllFinite(net.parameters()).Should().BeFalse();
        GradientCleaner.Clean(net.parameters()).Should().Be(3);
        net.W.grad!.data<float>().ToArray().Should().Equal(0f, 1e5f, -1e5f, 2.5f);
        before.data<float>().ToArray().Should().Equal(new[] { 0f, 1e5f, -1e5f, 2.5f }, "the gradient is cleaned in place");
        GradientCleaner.AllFinite(net.parameters()).Should().BeTrue();
    }

    [Fact]
    public void Adam_matches_the_textbook_update()
    {
        torch.set_num_threads(1);
        var net = new OneParam(tensor(new[] { 1.0f, -2.0f }));
        var opt = OptimizerFactory.Create(new OptimizerConfig(OptimizerKind.Adam, 0.1, 0.9, 0.99, 1e-8), net.parameters());
        double[] p = { 1, -2 }, m = { 0, 0 }, v = { 0, 0 };
        var gs = new[] { new[] { 0.5, -1.0 }, new[] { -0.25, 3.0 }, new[] { 1.0, 0.1 } };
        for (int s = 1; s <= 3; s++)
        {
            net.W.grad = tensor(gs[s - 1].Select(x => (float)x).ToArray());
            opt.Step();
            for (int i = 0; i < 2; i++)
            {
                m[i] = 0.9 * m[i] + 0.1 * gs[s - 1][i];
                v[i] = 0.99 * v[i] + 0.01 * gs[s - 1][i] * gs[s - 1][i];
                double mh = m[i] / (1 - Math.Pow(0.9, s)), vh = v[i] / (1 - Math.Pow(0.99, s));
                p[i] -= 0.1 * mh / (Math.Sqrt(vh) + 1e-8);
            }
        }
        var got = net.W.data<float>().ToArray();
        got[0].Should().BeApproximately((float)p[0], 1e-5f);
        got[1].Should().BeApproximately((float)p[1], 1e-5f);
    }

    [Fact]
    public void Set_learning_rate_changes_every_group()
    {
        var net = new OneParam(zeros(2));
        var opt = OptimizerFactory.Create(new OptimizerConfig(), net.parameters());
        OptimizerFactory.SetLearningRate(opt, 3e-4);
        opt.LearningRate.Should().Be(3e-4);
        FluentActions.Invoking(() => OptimizerFactory.SetLearningRate(opt, double.NaN)).Should().Throw<ArgumentOutOfRangeException>();
    }
}
