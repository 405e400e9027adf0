using Ect.Compute.Networks;
using Ect.Compute.Preconditioning;
using FluentAssertions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ect.Compute.Tests.Networks;

/// <summary>The full CIFAR-10 DDPM++ with 2 threads: training steps give finite input and parameter gradients.</summary>
[Collection("TorchThreads")]
public class CifarNetworkSlowTests
{
    [Fact]
    [Trait("Category", "Slow")]
    public void TwoThreadBackwardThroughCifarDdpmPPIsFinite()
    {
        torch.set_num_threads(2);
        try
        {
            torch.manual_seed(0);
            using var net = new EctPrecond(SongUNetConfig.Cifar10DdpmPP(dropout: 0.13));
            net.train();
            for (int step = 0; step < 3; step++)
            {
                using var scope = NewDisposeScope();
                var x = randn(2, 3, 32, 32).requires_grad_(true);
                var sigma = tensor(new[] { 0.02f, 5f });
                net.zero_grad();
                var d = net.forward(x, sigma, null);
                d.shape.Should().Equal(2, 3, 32, 32);
                (d - x.detach()).Squared().mean().backward();
                x.grad!.isfinite().all().item<bool>().Should().BeTrue($"input gradient finite (step {step})");
                foreach (var (name, p) in net.named_parameters())
                    p.grad!.isfinite().all().item<bool>().Should().BeTrue($"{name} gradient finite (step {step})");
            }
        }
        finally
        {
            torch.set_num_threads(1);
        }
    }
}
