using Ect.Compute.Evaluation;
using FluentAssertions;
using TorchSharp;
using TorchSharp.PyBridge;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Ect.Compute.Tests.Evaluation;

/// <summary>Structure, formula weights and strict loading of <see cref="InceptionV3Fid"/> (no forward pass: fast).</summary>
public class InceptionV3FidStructureTests
{
    public InceptionV3FidStructureTests() => torch.set_num_threads(2);

    [Fact]
    public void State_dict_keys_order_and_shapes_are_pytorch_fids()
    {
        using var net = new InceptionV3Fid();
        var sd = net.state_dict();
        var expected = InceptionFormulaWeights.Entries;
        // TorchSharp's state_dict lists keys in its own order for deep modules; the key set must be pytorch-fid's, and
        // parameters and buffers, each on their own, must come in pytorch-fid's (registration) order.
        sd.Keys.Should().BeEquivalentTo(expected.Select(e => e.Key), "keys must be pytorch-fid's state_dict keys");
        static bool IsBuffer(string kind) => kind.StartsWith("bn_running") || kind == "bn_num_batches_tracked";
        net.named_parameters().Select(p => p.name).Should().Equal(expected.Where(e => !IsBuffer(e.Kind)).Select(e => e.Key));
        net.named_buffers().Select(b => b.name).Should().Equal(expected.Where(e => IsBuffer(e.Kind)).Select(e => e.Key));
        foreach (var e in expected)
        {
            var shape = sd[e.Key].shape;
            if (e.Kind == "bn_num_batches_tracked") sd[e.Key].numel().Should().Be(1, e.Key);
            else shape.Should().Equal(e.Shape, e.Key);
        }
        net.parameters().Sum(p => p.numel()).Should().Be(23_850_960);
        net.Dimension.Should().Be(2048);
        net.Name.Should().Be("FID-InceptionV3");
    }

    [Theory]
    [InlineData(1.0)]
    [InlineData(1.4)]
    public void Formula_weights_regenerate_the_golden_first5_and_sums(double gain)
    {
        foreach (var e in InceptionFormulaWeights.Entries)
        {
            if (e.Kind == "bn_num_batches_tracked") continue;
            var v = InceptionFormulaWeights.Values(e, gain);
            if (gain != 1.0)
            {
                // The golden first5/sums are for gain 1; the gain-1.4 set differs only in conv/fc weights (scale 1.4).
                if (e.Kind != "weight") continue;
                var v1 = InceptionFormulaWeights.Values(e, 1.0);
                for (var i = 0; i < Math.Min(5, v.Length); i++)
                    ((double)v[i]).Should().BeApproximately(1.4 * v1[i], 2.5e-7 * Math.Abs(v1[i]) + 1e-12, e.Key);
                continue;
            }
            v.Take(5).Should().Equal(e.First5, $"first5 of {e.Key} (float32 bits of the formula)");
            var (sum, sumSq, sumAbs) = InceptionFormulaWeights.Sums(v);
            Math.Abs(sum - e.Sum).Should().BeLessThanOrEqualTo(1e-9 * Math.Abs(e.Sum) + 1e-12 * sumAbs, $"sum of {e.Key}");
            Math.Abs(sumSq - e.SumSq).Should().BeLessThanOrEqualTo(1e-9 * e.SumSq, $"sum_sq of {e.Key}");
        }
    }

    [Fact]
    public void Strict_loader_names_the_first_missing_wrong_shaped_or_unexpected_key()
    {
        using var net = new InceptionV3Fid();
        var sd = InceptionFormulaWeights.StateDict(1.0);
        try
        {
            var missing = new Dictionary<string, Tensor>(sd);
            missing.Remove("Mixed_6b.branch7x7_2.conv.weight");
            missing.Remove("Mixed_7c.branch_pool.bn.bias");
            var act = () => net.LoadWeights(missing, "m.pth");
            act.Should().Throw<InvalidDataException>().WithMessage("*m.pth*missing key 'Mixed_6b.branch7x7_2.conv.weight'*");

            using var wrong = zeros(128, 128, 7, 1);
            var shaped = new Dictionary<string, Tensor>(sd) { ["Mixed_6b.branch7x7_2.conv.weight"] = wrong };
            act = () => net.LoadWeights(shaped, "s.pth");
            act.Should().Throw<InvalidDataException>()
                .WithMessage("*key 'Mixed_6b.branch7x7_2.conv.weight' has shape [128,128,7,1], expected [128,128,1,7]*");

            using var aux = zeros(10);
            var extra = new Dictionary<string, Tensor>(sd) { ["AuxLogits.fc.bias"] = aux };
            act = () => net.LoadWeights(extra, "x.pth");
            act.Should().Throw<InvalidDataException>().WithMessage("*unexpected key 'AuxLogits.fc.bias'*");

            // num_batches_tracked may be absent (converted checkpoints); everything else loads.
            var noTracked = sd.Where(kv => !kv.Key.EndsWith("num_batches_tracked")).ToDictionary(kv => kv.Key, kv => kv.Value);
            net.LoadWeights(noTracked, "ok");
            var w = net.state_dict()["Conv2d_1a_3x3.conv.weight"].flatten().data<float>().Take(5).ToArray();
            w.Should().Equal(InceptionFormulaWeights.Entries[0].First5);
            var rvEntry = InceptionFormulaWeights.Entries.Single(e => e.Key == "Mixed_7c.branch_pool.bn.running_var");
            net.state_dict()[rvEntry.Key].data<float>().Take(5).Should().Equal(rvEntry.First5, "BatchNorm buffers load too");
        }
        finally { foreach (var t in sd.Values) t.Dispose(); }
    }

    [Fact]
    public void Small_module_round_trips_through_pth_and_safetensors_files()
    {
        // The loader is generic over modules: a BasicConv2d file round trip covers both file readers quickly.
        var dir = Directory.CreateTempSubdirectory("ect-bc-");
        try
        {
            using var src = new BasicConv2d("b", 3, 8, 3);
            using (no_grad())
                foreach (var (name, t) in src.state_dict())
                    if (t.is_floating_point()) { using var g = new torch.Generator(42); using var r = torch.rand(t.shape, generator: g); using var shifted = r.Plus(0.5); t.copy_(shifted); }
            var pth = Path.Combine(dir.FullName, "b.pth");
            var st = Path.Combine(dir.FullName, "b.safetensors");
            src.save_py(pth);
            src.save_safetensors(st);
            foreach (var file in new[] { pth, st })
            {
                using var dst = new BasicConv2d("b", 3, 8, 3);
                StrictStateDictLoader.Load(dst, file, "test conv");
                foreach (var (name, t) in src.state_dict())
                    dst.state_dict()[name].equal(t).all().item<bool>().Should().BeTrue($"{name} from {Path.GetExtension(file)}");
            }
            using var wrong = new BasicConv2d("b", 3, 16, 3);
            var act = () => StrictStateDictLoader.Load(wrong, pth, "test conv");
            act.Should().Throw<InvalidDataException>().WithMessage("*key 'conv.weight' has shape [8,3,3,3], expected [16,3,3,3]*");
        }
        finally { dir.Delete(true); }
    }

    [Fact]
    [Trait("Category", "Slow")]   // writes and reads two ~95 MB files
    public void Weights_load_from_pth_and_safetensors_files_and_bad_files_get_clear_errors()
    {
        var dir = Directory.CreateTempSubdirectory("ect-incep-");
        try
        {
            using var src = new InceptionV3Fid();
            var sd = InceptionFormulaWeights.StateDict(1.4);
            src.LoadWeights(sd);
            var pth = Path.Combine(dir.FullName, "w.pth");
            src.save_py(pth);   // PyTorch zip format (torch.load reads it)
            var st = Path.Combine(dir.FullName, "w.safetensors");
            src.save_safetensors(st);

            foreach (var file in new[] { pth, st })
            {
                using var net = new InceptionV3Fid();
                net.LoadWeights(file);
                var key = "Mixed_7c.branch3x3dbl_3b.conv.weight";
                net.state_dict()[key].equal(sd[key]).all().item<bool>().Should().BeTrue($"{key} from {Path.GetFileName(file)}");
                net.state_dict()["fc.bias"].equal(sd["fc.bias"]).all().item<bool>().Should().BeTrue();
            }
            foreach (var t in sd.Values) t.Dispose();

            var legacy = Path.Combine(dir.FullName, "legacy.pth");
            File.WriteAllBytes(legacy, [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc]);   // legacy torch.save starts with a pickle
            using var n2 = new InceptionV3Fid();
            var act = () => n2.LoadWeights(legacy);
            act.Should().Throw<InvalidDataException>().WithMessage("*legacy.pth*not a zip-format*Re-save*");
            act = () => n2.LoadWeights(Path.Combine(dir.FullName, "absent.pth"));
            act.Should().Throw<FileNotFoundException>().WithMessage("*absent.pth*pytorch-fid*");
        }
        finally { dir.Delete(true); }
    }
}

/// <summary>Forward pass against the golden activations and features (4 images, 299x299, both weight gains).</summary>
public class InceptionV3FidForwardTests
{
    static readonly GoldenFolder Golden = new(EvalTestPaths.FidInception);
    readonly ITestOutputHelper _out;

    public InceptionV3FidForwardTests(ITestOutputHelper output)
    {
        _out = output;
        torch.set_num_threads(2);
    }

    static InceptionV3Fid Net(double gain)
    {
        var net = new InceptionV3Fid();
        var sd = InceptionFormulaWeights.StateDict(gain);
        net.LoadWeights(sd, $"formula weights gain {gain}");
        foreach (var t in sd.Values) t.Dispose();
        return net;
    }

    /// <summary>Golden images are in [0,1] (pytorch-fid's convention); ours are in [-1,1].</summary>
    static Tensor Images(int count = 4)
    {
        using var img01 = Golden.Tensor("images");
        using var head = img01[..count];
        using var scaled = head.Times(2);
        return scaled.Minus(1);
    }

    /// <summary>Largest |diff| / max|expected| (printed with the rms ratio for the record).</summary>
    double Error(Tensor actual, Tensor expected, string name)
    {
        actual.shape.Should().Equal(expected.shape, name);
        using var scope = NewDisposeScope();
        var a = actual.to(ScalarType.Float64);
        var e = expected.to(ScalarType.Float64);
        var maxAbs = e.abs().max().item<double>();
        var diff = (a - e).abs();
        var rel = diff.max().item<double>() / maxAbs;
        var rmsRel = diff.Squared().mean().sqrt().item<double>() / e.Squared().mean().sqrt().item<double>();
        _out.WriteLine($"{name}: max|diff|/max|f| {rel:e2}, rms(diff)/rms(f) {rmsRel:e2}, max|f| {maxAbs:g4}");
        return rel;
    }

    void Compare(Tensor actual, string goldenName, double rel = 1e-4)
    {
        using var expected = Golden.Tensor(goldenName);
        Error(actual, expected, goldenName).Should().BeLessThanOrEqualTo(rel, $"{goldenName}: max|diff| <= {rel} * max|f|");
    }

    [Fact]
    public void Gain_1_taps_and_features_match_pytorch_fid()
    {
        using var net = Net(1.0);
        using var images = Images();
        using var taps = net.ForwardWithTaps(images);
        using (var in0 = taps.Input[..1]) Compare(in0, "act/input");
        using (var t = taps.MaxPool1[..1]) Compare(t, "act/maxpool1");
        using (var t = taps.MaxPool2[..1]) Compare(t, "act/maxpool2");
        using (var t = taps.Mixed5d[..1]) Compare(t, "act/Mixed_5d");
        using (var t = taps.Mixed6e[..1]) Compare(t, "act/Mixed_6e");
        using (var t = taps.Mixed7c[..1]) Compare(t, "act/Mixed_7c");
        Compare(taps.Features, "features");
    }

    [Fact]
    public void Gain_1_4_features_and_taps_match_pytorch_fid_and_batching_does_not_matter()
    {
        using var net = Net(1.4);
        using var images = Images();
        using var taps = net.ForwardWithTaps(images);
        // Deep float32 taps at gain 1.4 get 5e-4: measured against our float64 replica (which matches the golden float64
        // features to < 1e-9, see the Float64 test), TorchSharp's float32 (libtorch 2.10, oneDNN) is 2.0e-4 (max) /
        // 1.5e-4 (rms) off at Mixed_6e and 1e-4 at Mixed_7c, PyTorch 1.13's golden float32 5e-5 / 3e-5: float32 rounding
        // amplified by the growing activations, not a wiring error. Features keep the README's 1e-4.
        using (var t = taps.Mixed6e[..1]) Compare(t, "gain1.4/act/Mixed_6e", 5e-4);
        using (var t = taps.Mixed7c[..1]) Compare(t, "gain1.4/act/Mixed_7c", 5e-4);
        Compare(taps.Features, "gain1.4/features");

        // The extractor API gives the same features, and one image alone gives the same row (golden: batch 4 vs 1 = 0).
        using var single = net.ExtractFeatures(images[2..3]);
        using var row = taps.Features[2..3];
        ((single - row).abs().max().item<float>()).Should().BeLessThanOrEqualTo(1e-5f * row.abs().max().item<float>());
    }

    [Fact]
    public void Float64_replica_matches_the_golden_float64_features_for_both_gains()
    {
        // A float64 run removes float32 rounding from the comparison: what is left is the port's own error.
        foreach (var (gain, name) in new[] { (1.0, "features_f64"), (1.4, "gain1.4/features_f64") })
        {
            using var net = Net(gain);
            net.to(ScalarType.Float64);
            var img = Golden.ReadAsDouble("images").Take(3 * 32 * 32).ToArray();
            using var x01 = torch.tensor(img, [1L, 3, 32, 32], ScalarType.Float64);
            using var x2 = x01.Times(2);
            using var x = x2.Minus(1);
            using var f = net.ExtractFeatures(x);
            f.dtype.Should().Be(ScalarType.Float64);
            using var expected = torch.tensor(Golden.ReadAsDouble(name).Take(2048).ToArray(), [1L, 2048], ScalarType.Float64);
            Error(f, expected, name).Should().BeLessThan(1e-9, name);
        }
    }

    [Fact]
    public void Grey_images_are_repeated_to_three_channels()
    {
        using var net = Net(1.4);
        using var images = Images(1);
        using var grey = images[.., ..1];
        using var rgb = grey.expand(-1, 3, -1, -1).contiguous();
        using var fGrey = net.ExtractFeatures(grey);
        using var fRgb = net.ExtractFeatures(rgb);
        fGrey.equal(fRgb).all().item<bool>().Should().BeTrue();
        using var bad = zeros(1, 2, 8, 8);
        var act = () => net.ExtractFeatures(bad);
        act.Should().Throw<ArgumentException>().WithMessage("*1 (grey) or 3 (RGB) channels; got 2*");
    }
}
