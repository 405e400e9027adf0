using Ect.Compute;
using Ect.Compute.Losses;
using Ect.Compute.Networks;
using Ect.Compute.Preconditioning;
using Ect.Compute.Runtime;
using FluentAssertions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ect.Actors.Tests.TorchDevices;

/// <summary>
/// Parity of the configured device with the CPU (scripts/gpu-check.sh): the same initial weights (made on the host), the
/// same inputs and the same draws (rndNormal, eps given; dropout 0) give the denoiser's output, the ECT loss and its
/// gradients within float32 tolerance. The device is ECT_GPU_CHECK_DEVICE (gpu-check.sh sets cuda:0). Unset, it is the
/// CPU itself: then the comparison is exact by construction and the test checks only the harness (placement checks, the
/// loss path with given draws), which is what the default suite can check here.
/// </summary>
[Collection(TorchDeviceCollection.Name)]
public sealed class DeviceParityTests
{
    private static readonly SongUNetConfig Tiny = SongUNetConfig.DdpmPP(16, 1, 0, 8, [1, 2], 1, [8], 0.0);
    // Relative to the largest magnitude. On CUDA, TF32 convolutions (cuDNN allows them by default) round to ~1e-3.
    private const double Tolerance = 2e-3;

    private static Device Configured() =>
        ComputeDevice.Resolve(Environment.GetEnvironmentVariable("ECT_GPU_CHECK_DEVICE") is { Length: > 0 } d ? d : "cpu").Device;

    private static EctPrecond Net()
    {
        torch.set_num_threads(1);
        torch.random.manual_seed(21);
        return new EctPrecond(Tiny);
    }

    private static double RelativeDifference(Tensor reference, Tensor onDevice)
    {
        using var scope = NewDisposeScope();
        var r = reference.to(float64);
        var d = onDevice.to(float64, CPU);
        return (r - d).abs().max().item<double>() / Math.Max(r.abs().max().item<double>(), 1e-12);
    }

    [Fact]
    public void Denoiser_output_loss_and_gradients_on_the_device_match_the_cpu()
    {
        var device = Configured();
        using var reference = Net();
        using var net = Net();
        ModulePlacement.MoveTo(net, device);
        DeviceCheck.Misplaced(device, net).Should().BeEmpty();

        using var scope = NewDisposeScope();
        torch.random.manual_seed(4);
        var images = rand([4, 1, 16, 16], dtype: float32, device: CPU).Times(2.0).Minus(1.0);
        var rndNormal = randn([4, 1, 1, 1], dtype: float32, device: CPU);
        var eps = randn([4, 1, 16, 16], dtype: float32, device: CPU);
        var sigma = tensor(new[] { 0.02f, 0.5f, 2.0f, 40.0f }, dtype: float32, device: CPU);

        Tensor dRef, dDev;
        using (no_grad())
        {
            dRef = reference.forward(images, sigma, null);
            dDev = net.forward(images.to(device), sigma.to(device), null);
        }
        DeviceCheck.Misplaced(device, outputs: [("D", dDev)]).Should().BeEmpty();
        RelativeDifference(dRef, dDev).Should().BeLessThan(Tolerance, "the denoiser on the device matches the CPU");

        // The ECT loss with given draws, and its gradients (the training step's arithmetic without RNG).
        var loss = new EctLoss(new MappingFunction(stage: 2));
        var lRef = loss.Compute(reference, images, null, rndNormal, eps);
        var lDev = loss.Compute(net, images.to(device), null, rndNormal.to(device), eps.to(device));
        RelativeDifference(lRef, lDev).Should().BeLessThan(Tolerance);
        lRef.sum().backward();
        lDev.sum().backward();
        var refGrads = reference.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad);
        DeviceCheck.Misplaced(device, net).Should().BeEmpty("gradients land on the device too");
        foreach (var (name, p) in net.named_parameters())
        {
            if (refGrads[name] is not { } g || g.abs().max().item<float>() == 0) continue;
            RelativeDifference(g, p.grad!).Should().BeLessThan(10 * Tolerance, $"gradient of {name}");
        }
    }
}
