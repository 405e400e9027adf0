using Ect.Compute.Networks;
using Ect.Compute.Preconditioning;
using Ect.Compute.Sampling;
using FluentAssertions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ect.Compute.Tests.Networks;

/// <summary>
/// Where the port once differed from the official ECT / EDM code (issue 13, point 6): the Fourier embedding's scale,
/// the residual/skip encoder's aux taps, Heun's single step, EDMPrecond's sigma range and round_sigma.
/// </summary>
[Collection("TorchThreads")]
public class OfficialFidelityTests
{
    private static SongUNetConfig Tiny(SongUNetConfig c) => c with
    {
        ImgResolution = 16, ModelChannels = 16, ChannelMult = [1, 2], NumBlocks = 1, AttnResolutions = [8], Dropout = 0,
    };

    [Fact]
    public void The_fourier_embedding_starts_at_the_official_ect_scale_of_0_02()
    {
        torch.set_num_threads(1);
        torch.manual_seed(0);
        SongUNetConfig.NcsnPP().FourierScale.Should().Be(0.02, "locuslab/ect's FourierEmbedding(scale=0.02) is what its SongUNet builds");
        new SongUNetConfig().FourierScale.Should().Be(0.02);
        using var net = new SongUNet(Tiny(SongUNetConfig.NcsnPP(imgResolution: 16, imgChannels: 1)) with { ModelChannels = 64 });
        var freqs = net.state_dict()["map_noise.freqs"];
        // randn * 0.02 over 64 values: the sample std is 0.02 within sampling error (EDM's 16 would give ~16).
        var std = freqs.std().item<float>();
        std.Should().BeInRange(0.012f, 0.03f);
    }

    private static Dictionary<string, Tensor> Taps(SongUNet net, Tensor x, Tensor noise)
    {
        var taps = new Dictionary<string, Tensor>();
        using var y = net.Forward(x, noise, null, null, (name, t) => taps[name] = t.detach().clone());
        return taps;
    }

    private static bool Same(Tensor a, Tensor b)
    {
        if (!a.shape.SequenceEqual(b.shape) || a.dtype != b.dtype) return false;
        using var eq = a.eq(b);
        using var all = eq.all();
        return all.item<bool>();
    }

    private static T Module<T>(SongUNet net, string name) where T : class =>
        net.named_modules().Single(m => m.name == name).module as T ?? throw new InvalidOperationException(name);

    [Fact]
    public void A_residual_encoders_aux_tap_is_the_modules_own_output_as_a_forward_hook_sees_it()
    {
        torch.set_num_threads(1);
        torch.manual_seed(1);
        using var net = new SongUNet(Tiny(SongUNetConfig.NcsnPP(imgResolution: 16, imgChannels: 3)));
        net.eval();
        using var x = randn(2, 3, 16, 16);
        using var noise = randn(2);
        var taps = Taps(net, x, noise);
        // The first aux_residual takes the network input itself (aux = x before any level).
        using var expected = Module<Conv2d>(net, "enc.8x8_aux_residual").forward(x);
        taps["enc.8x8_aux_residual"].Should().NotBeNull();
        Same(taps["enc.8x8_aux_residual"], expected).Should().BeTrue("the tap is the module's output, not (h + aux) / sqrt(2)");
        foreach (var t in taps.Values) t.Dispose();
    }

    [Fact]
    public void A_skip_encoders_aux_tap_is_the_modules_own_output()
    {
        torch.set_num_threads(1);
        torch.manual_seed(2);
        using var net = new SongUNet(Tiny(SongUNetConfig.DdpmPP(imgResolution: 16, imgChannels: 3)) with { EncoderType = EncoderType.Skip });
        net.eval();
        using var x = randn(2, 3, 16, 16);
        using var noise = randn(2);
        var taps = Taps(net, x, noise);
        using var expected = Module<Conv2d>(net, "enc.8x8_aux_skip").forward(taps["enc.8x8_aux_down"]);
        Same(taps["enc.8x8_aux_skip"], expected).Should().BeTrue("the tap is the module's output, not h + skip");
        foreach (var t in taps.Values) t.Dispose();
    }

    [Fact]
    public void Heun_steps_driven_one_by_one_give_the_bits_of_the_whole_sampler()
    {
        torch.set_num_threads(1);
        torch.manual_seed(3);
        using var net = new EdmPrecond(Tiny(SongUNetConfig.DdpmPP(imgResolution: 16, imgChannels: 1)));
        var cfg = new HeunSamplerConfig(NumSteps: 4, SChurn: 5);
        using var z = randn(new long[] { 2, 1, 16, 16 }, generator: new Generator(7));
        using var whole = HeunSampler.Sample(net, z, cfg, generator: new Generator(9));

        var t = HeunSampler.TimeSteps(cfg, net);
        var g = new Generator(9);
        net.eval();
        var x = z.to(float64).Times(t[0]);
        for (int i = 0; i < cfg.NumSteps; i++)
        {
            var next = HeunSampler.Step(net, x, t[i], t[i + 1], cfg, null,
                like => randn(like.shape, dtype: float64, generator: g));
            x.Dispose();
            x = next;
        }
        Same(x, whole).Should().BeTrue("Sample is Step over the time steps, churn noise included");
        x.Dispose();
    }

    [Fact]
    public void Edm_precond_has_edms_sigma_range_and_the_sampler_clamps_to_a_networks_range()
    {
        torch.set_num_threads(1);
        var cfg = Tiny(SongUNetConfig.DdpmPP(imgResolution: 16, imgChannels: 1));
        using var edm = new EdmPrecond(cfg);
        edm.SigmaMin.Should().Be(0);
        edm.SigmaMax.Should().Be(double.PositiveInfinity);
        edm.RoundSigma(0.123).Should().Be(0.123, "EDMPrecond.round_sigma is torch.as_tensor(sigma)");
        HeunSampler.TimeSteps(new HeunSamplerConfig(), edm).Should().Equal(HeunSampler.TimeSteps(new HeunSamplerConfig()),
            "sigma_min 0 and sigma_max inf leave EDM's schedule as it is");

        using var narrow = new EdmPrecond(cfg, sigmaMin: 0.01, sigmaMax: 50);
        var t = HeunSampler.TimeSteps(new HeunSamplerConfig(), narrow);
        t[0].Should().BeApproximately(50, 1e-12, "max(sigma_max) is clamped to the network's");
        t[17].Should().BeApproximately(0.01, 1e-15, "sigma_min is clamped to the network's");
        using var ect = new EctPrecond(cfg);
        HeunSampler.TimeSteps(new HeunSamplerConfig(), ect)[17].Should().BeApproximately(0.003, 1e-15, "ECMPrecond's sigma_min = 0.003");
        var bad = () => new EdmPrecond(cfg, sigmaMin: 1, sigmaMax: 0.5);
        bad.Should().Throw<ArgumentException>().WithMessage("*sigma_min*sigma_max*");
    }
}
