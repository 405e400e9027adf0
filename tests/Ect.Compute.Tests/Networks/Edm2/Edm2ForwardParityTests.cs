using Ect.Compute.Networks.Edm2;
using FluentAssertions;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Ect.Compute.Tests.Networks.Edm2;

/// <summary>
/// Forward parity of Edm2UNet + Edm2Precond with locuslab/ect's imgnet branch (golden edm2-small set): the denoiser and
/// raw U-Net outputs in eval mode, every tap, the train-mode outputs with the stored dropout noise injected, and the
/// weights that forced weight normalisation leaves behind.
/// </summary>
[Collection("TorchThreads")]
public class Edm2ForwardParityTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void EvalOutputsMatchReference(int threads)
    {
        torch.set_num_threads(threads);
        using var scope = NewDisposeScope();
        using var net = GoldenEdm2Small.LoadNet();
        net.eval();
        var t = GoldenEdm2Small.Tensors();
        var x = t.Read("fwd/x");
        var sigma = t.Read("fwd/sigma");
        var labels = t.Read("fwd/labels");
        using (no_grad())
        {
            var acts = net.ExtractActivations(x, sigma, labels);
            Report(GoldenEdm2Small.ShouldMatch(acts["D"], t.Read("fwd/D_eval"), "fwd/D_eval"), "D_eval");
            Report(GoldenEdm2Small.ShouldMatch(acts["F"], t.Read("fwd/F_eval"), "fwd/F_eval"), "F_eval");
            foreach (var a in acts.Values) a.Dispose();

            // generator_fn passes sigma as a 0-dim float64 tensor: it broadcasts over the batch.
            var dScalar = net.forward(x, tensor(2.5, float64), labels);
            Report(GoldenEdm2Small.ShouldMatch(dScalar, t.Read("fwd/D_eval_scalar"), "fwd/D_eval_scalar"), "D_eval_scalar");
            var dNoLabels = net.forward(x, sigma, null);
            Report(GoldenEdm2Small.ShouldMatch(dNoLabels, t.Read("fwd/D_eval_nolabels"), "fwd/D_eval_nolabels"), "D_eval_nolabels");
        }
        void Report(double rel, string what) => output.WriteLine($"{threads} thread(s) {what}: max|diff|/max|ref| = {rel:E2}");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void EveryTapMatchesReference(int threads)
    {
        torch.set_num_threads(threads);
        using var scope = NewDisposeScope();
        using var net = GoldenEdm2Small.LoadNet();
        net.eval();
        var t = GoldenEdm2Small.Tensors();
        var acts = net.ExtractActivations(t.Read("fwd/x"), t.Read("fwd/sigma"), t.Read("fwd/labels"));
        var internalSamples = GoldenEdm2Small.Meta()["fwd"]!["internal_samples"]!.AsArray().Select(v => v!.GetValue<long>()).ToArray();
        internalSamples.Should().Equal([1L]);
        var refs = t.Names.Where(n => n.StartsWith("act/")).ToList();
        refs.Should().HaveCount(25);
        double worst = 0;
        foreach (var name in refs)
        {
            var key = name["act/unet.".Length..];
            acts.Should().ContainKey(key, $"the U-Net reports {key}");
            var reference = t.Read(name);
            // Taps inside a block are stored for sample 1 only; the others for the whole batch.
            var ours = key.Count(ch => ch == '.') == 2 ? acts[key].narrow(0, internalSamples[0], 1) : acts[key];
            worst = Math.Max(worst, GoldenEdm2Small.ShouldMatch(ours, reference, $"{name} ({threads} thread(s))"));
        }
        output.WriteLine($"{threads} thread(s): worst tap max|diff|/max|ref| = {worst:E2}");
        foreach (var a in acts.Values) a.Dispose();
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void TrainModeWithoutForcedNormalisationMatchesAndLeavesWeights(int threads)
    {
        torch.set_num_threads(threads);
        using var scope = NewDisposeScope();
        using var net = GoldenEdm2Small.LoadNet();
        net.train();
        ForcedWeightNormalization.Set(net, false);
        var t = GoldenEdm2Small.Tensors();
        var asked = new List<string>();
        Dictionary<string, Tensor> acts;
        using (no_grad())
            acts = net.ExtractActivations(t.Read("fwd/x"), t.Read("fwd/sigma"), t.Read("fwd/labels"),
                GoldenEdm2Small.InjectedDropout(t, "fwd/dropout/", asked));
        GoldenEdm2Small.ShouldMatch(acts["D"], t.Read("fwd/D_train_nown"), "fwd/D_train_nown");
        GoldenEdm2Small.ShouldMatch(acts["F"], t.Read("fwd/F_train_nown"), "fwd/F_train_nown");
        // Dropout acts exactly in the blocks the reference drew noise for (dropout_res = 8: the 8x8 level only).
        asked.Should().BeEquivalentTo(t.Names.Where(n => n.StartsWith("fwd/dropout/unet.")).Select(n => n["fwd/dropout/unet.".Length..]));
        var w0 = GoldenEdm2Small.Weights();
        foreach (var (name, p) in net.state_dict())
            GoldenEdm2Small.BitwiseEqual(p, w0.Read(name)).Should().BeTrue($"{name} is untouched without forced WN");
        foreach (var a in acts.Values) a.Dispose();
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void TrainModeForcedNormalisationMatchesOutputAndWeights(int threads)
    {
        torch.set_num_threads(threads);
        using var scope = NewDisposeScope();
        using var net = GoldenEdm2Small.LoadNet();
        net.train();
        var t = GoldenEdm2Small.Tensors();
        var d = net.Forward(t.Read("fwd/x"), t.Read("fwd/sigma"), t.Read("fwd/labels"), null, GoldenEdm2Small.InjectedDropout(t, "fwd/dropout/"));
        GoldenEdm2Small.ShouldMatch(d, t.Read("fwd/D_train"), "fwd/D_train");
        // normalize is not idempotent: with forced WN the layers use normalize(normalize(W0)), which the tolerance sees.
        var act = () => GoldenEdm2Small.ShouldMatch(d, t.Read("fwd/D_train_nown"), "D_train against D_train_nown");
        act.Should().Throw<Exception>("forced WN changes the output by ~5e-5 relative");

        // The lasting effect: every MPConv weight is now normalize(W0); gains and buffers unchanged.
        foreach (var name in t.Names.Where(n => n.StartsWith("fwd/forcewn/unet.")))
        {
            var key = name["fwd/forcewn/".Length..];
            var p = net.named_parameters().Single(p => p.name == key).parameter;
            GoldenEdm2Small.ShouldMatch(p, t.Read(name), name, atolScale: 1e-6);
        }
        GoldenEdm2Small.FingerprintsShouldMatch(net, t.Read("fwd/forcewn/fingerprints"), "weights after forced WN", rtol: 1e-5);
        var w0 = GoldenEdm2Small.Weights();
        foreach (var (name, p) in net.state_dict().Where(kv => !kv.Key.EndsWith(".weight")))
            GoldenEdm2Small.BitwiseEqual(p, w0.Read(name)).Should().BeTrue($"{name} (a gain or buffer) is untouched by forced WN");
        // Normalised rows have unit RMS (up to eps): the weights visibly changed from the perturbed W0.
        var outConv = net.Unet.OutConv.Weight;
        var rms = outConv.detach().Squared().mean([1, 2, 3]).sqrt();
        rms.allclose(ones_like(rms), rtol: 0, atol: 1e-3).Should().BeTrue();
        w0.Read("unet.out_conv.weight").allclose(outConv.detach(), rtol: 0, atol: 1e-3).Should().BeFalse("W0's rows were scaled by exp(0.25 N)");
    }
}
