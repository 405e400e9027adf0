using Ect.Compute.Networks;
using FluentAssertions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ect.Compute.Tests.Networks;

/// <summary>
/// EDM's Conv2d resampling paths: fused (filter folded next to the conv, as the NCSN++ residual encoder
/// uses) must equal resample-then-conv; the filters are normalised; up then box-down is the identity.
/// </summary>
[Collection("TorchThreads")]
public class Conv2dResampleTests
{
    [Theory]
    [InlineData(false, new[] { 1, 1 })]
    [InlineData(false, new[] { 1, 3, 3, 1 })]
    [InlineData(true, new[] { 1, 1 })]
    [InlineData(true, new[] { 1, 3, 3, 1 })]
    public void FusedResampleMatchesItsDefinition(bool up, int[] filter)
    {
        torch.set_num_threads(1);
        torch.manual_seed(3);
        var init = new LayerInit(InitMode.XavierUniform, 1, 0.1);
        var fused = new Conv2d(8, 16, 3, up: up, down: !up, resampleFilter: filter, fusedResample: true, init: init);
        // Up: EDM upsamples then convolves in both orders. Down: the fused form convolves at full
        // resolution and then filters/decimates (Song et al.'s FIR down-conv), a different operator from
        // the unfused decimate-then-convolve, so it is checked against that explicit composition.
        using var x = randn(2, 8, up ? 8 : 24, up ? 8 : 24);
        using var a = fused.forward(x);
        Tensor b;
        if (up)
        {
            var plain = new Conv2d(8, 16, 3, up: true, resampleFilter: filter, init: init);
            plain.load_state_dict(fused.state_dict());
            b = plain.forward(x);
        }
        else
        {
            var conv = new Conv2d(8, 16, 3, init: init);
            using (no_grad()) { conv.Weight!.copy_(fused.Weight!); conv.Bias!.copy_(fused.Bias!); }
            var decimate = new Conv2d(16, 16, 0, down: true, resampleFilter: filter);
            using var full = conv.forward(x);
            b = decimate.forward(full);
        }
        a.shape.Should().Equal(2, 16, up ? 16 : 12, up ? 16 : 12);
        // Away from the border (where the orders of zero padding differ) both orders give the same result.
        int border = filter.Length / 2 + 1;
        long size = a.shape[2];
        using var ai = a[.., .., border..(int)(size - border), border..(int)(size - border)];
        using var bi = b[.., .., border..(int)(size - border), border..(int)(size - border)];
        GoldenDdpmppSmall.ShouldMatch(ai, bi, $"fused vs plain ({(up ? "up" : "down")}, [{string.Join(",", filter)}])", 1e-5, 1e-6);
    }

    [Fact]
    public void FiltersAreNormalisedAndBoxUpThenDownIsIdentity()
    {
        torch.set_num_threads(1);
        var down = new Conv2d(3, 3, 0, down: true, resampleFilter: [1, 3, 3, 1]);
        down.ResampleFilter!.sum().item<float>().Should().BeApproximately(1f, 1e-6f);
        down.state_dict().Keys.Should().Equal("resample_filter");
        var up = new Conv2d(3, 3, 0, up: true);
        var boxDown = new Conv2d(3, 3, 0, down: true);
        using var x = randn(1, 3, 8, 8);
        using var upped = up.forward(x);
        upped.shape.Should().Equal(1, 3, 16, 16);
        using var back = boxDown.forward(upped);
        GoldenDdpmppSmall.ShouldMatch(back, x, "box down(up(x))", 1e-6, 1e-7);
        new Conv2d(3, 3, 0).state_dict().Should().BeEmpty("no kernel, no resampling: EDM registers nothing");
    }
}
