using Ect.Compute.Losses;
using Ect.Compute.Tests.Training;
using FluentAssertions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ect.Compute.Tests.Losses;

[Collection(Ect.Compute.Tests.Training.GlobalTorchStateCollection.Name)]
public class EdmLossTests
{
    [Fact]
    public void Per_sample_loss_is_the_weighted_pixel_sum()
    {
        torch.set_num_threads(1);
        using var net = new TinyPrecond();
        net.train();
        using var g = new Generator(4);
        var y = rand(new long[] { 3, 1, 8, 8 }, generator: g).Times(2).Minus(1);
        var n = randn(new long[] { 3 }, generator: g);
        var eps = randn(new long[] { 3, 1, 8, 8 }, generator: g);
        var loss = new EdmLoss();
        using var perPixel = loss.PerPixel(net, y, null, n, eps);
        perPixel.shape.Should().Equal(3, 1, 8, 8);

        var sigma = n.Times(1.2).Minus(1.2).exp();
        var expected = new double[3];
        using (no_grad())
        {
            var d = net.call(y.Plus(eps * sigma.reshape(3, 1, 1, 1)), sigma, null);
            for (int i = 0; i < 3; i++)
            {
                double s = sigma[i].item<float>();
                expected[i] = (s * s + 0.25) / (s * s * 0.25) * (d[i] - y[i]).Squared().sum().item<float>();
            }
        }
        var sums = perPixel.reshape(3, -1).sum(1).data<float>().ToArray();
        for (int i = 0; i < 3; i++) sums[i].Should().BeApproximately((float)expected[i], 1e-4f * (float)expected[i]);

        torch.random.manual_seed(8);
        using var a = loss.Compute(net, y, null);
        torch.random.manual_seed(8);
        using var b = loss.PerPixel(net, y, null);
        a.data<float>().ToArray().Should().Equal(b.reshape(3, -1).sum(1).data<float>().ToArray());
    }
}
