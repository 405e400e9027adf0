using Ect.Compute.Networks;
using FluentAssertions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ect.Compute.Tests.Networks;

/// <summary>
/// The oneDNN workaround in <see cref="Conv2d"/>: convolutions with few output channels run with a zero-padded kernel
/// of <see cref="Conv2d.MinComputeChannels"/> outputs. At 1 and 2 threads the input gradient must be finite on every
/// repeat and equal the float64 gradient of the plain convolution (float64 does not go through oneDNN's float32
/// kernels). The reference used to be the plain float32 convolution at one thread, which on AMD EPYC hosts is itself
/// wrong by ~0.6-1.4 (see Conv2d.MinComputeChannels): that made this test fail while the padded gradient was right.
/// </summary>
[Collection("TorchThreads")]
public class PaddedConvolutionTests
{
    [Theory]
    [InlineData(64, 1, 3)]
    [InlineData(128, 3, 3)]
    [InlineData(32, 8, 1)]
    public void PaddedInputGradientMatchesTheFloat64GradientAtOneAndTwoThreads(int inChannels, int outChannels, int kernel)
    {
        torch.manual_seed(1);
        var conv = new Conv2d(inChannels, outChannels, kernel, init: new LayerInit(InitMode.XavierUniform, 1, 0.1));
        using var x0 = randn(2, inChannels, 16, 16);
        using var g = randn(2, outChannels, 16, 16);

        torch.set_num_threads(1);
        using var expected = Float64InputGradient(conv, x0, g, kernel);
        expected.isfinite().all().item<bool>().Should().BeTrue("the float64 reference gradient must be finite");

        conv.PadSmallConvolutions = true;
        try
        {
            foreach (var threads in new[] { 1, 2 })
            {
                torch.set_num_threads(threads);
                for (int i = 0; i < 25; i++)
                {
                    using var scope = NewDisposeScope();
                    var got = InputGradient(conv, x0, g);
                    got.isfinite().all().item<bool>().Should().BeTrue($"padded conv input gradient must be finite ({threads} threads, repeat {i})");
                    GoldenDdpmppSmall.ShouldMatch(got, expected, $"padded conv input gradient ({threads} threads, repeat {i})", rtol: 1e-4, atolScale: 1e-5);
                }
            }
        }
        finally
        {
            conv.PadSmallConvolutions = true;
            torch.set_num_threads(1);
        }
    }

    /// <summary>d(sum(conv(x) * g))/dx of the plain convolution in float64, from the layer's own weights.</summary>
    private static Tensor Float64InputGradient(Conv2d conv, Tensor x0, Tensor g, int kernel)
    {
        using var x = x0.to(float64).detach().requires_grad_(true);
        using var w = conv.Weight!.detach().to(float64);
        using var b = conv.Bias!.detach().to(float64);
        using var y = nn.functional.conv2d(x, w, b, padding: [kernel / 2, kernel / 2]);
        using var loss = (y * g.to(float64)).sum();
        var grads = torch.autograd.grad([loss], [x]);
        return grads[0].to(float32).detach().clone();
    }

    [Fact]
    public void PaddingDoesNotChangeForwardOrWeightGradient()
    {
        torch.set_num_threads(1);
        torch.manual_seed(2);
        var conv = new Conv2d(16, 3, 3, init: new LayerInit(InitMode.XavierUniform, 1, 0.1));
        using var x = randn(2, 16, 8, 8);
        Tensor Run(bool pad, out Tensor wGrad)
        {
            conv.PadSmallConvolutions = pad;
            conv.zero_grad();
            var y = conv.forward(x);
            y.Squared().sum().backward();
            wGrad = conv.Weight!.grad!.clone();
            return y.detach();
        }
        using var yPlain = Run(false, out var gPlain);
        using var yPad = Run(true, out var gPad);
        yPad.shape.Should().Equal(2, 3, 8, 8);
        GoldenDdpmppSmall.ShouldMatch(yPad, yPlain, "forward", 1e-6, 1e-7);
        GoldenDdpmppSmall.ShouldMatch(gPad, gPlain, "weight gradient", 1e-5, 1e-6);
        conv.Weight!.shape.Should().Equal(3, 16, 3, 3);
        conv.state_dict().Keys.Should().BeEquivalentTo("weight", "bias");
    }

    private static Tensor InputGradient(Conv2d conv, Tensor x0, Tensor g)
    {
        using var x = x0.detach().clone().requires_grad_(true);
        using var y = conv.forward(x);
        using var loss = (y * g).sum();
        var grads = torch.autograd.grad([loss], [x]);
        return grads[0].detach().clone();
    }
}
