using Ect.Actors.Configuration;
using Ect.Actors.Engine;
using Ect.Compute.IO;
using Ect.Compute.Losses;
using Ect.Compute.Networks;
using Ect.Compute.Optim;
using Ect.Compute.Preconditioning;
using Ect.Data;
using FluentAssertions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ect.Actors.Tests.Eval;

/// <summary>
/// EDM's checkpoints trained with augmentation (train.py: augment_dim = 9) carry model.map_augment.weight: they load
/// with ect.network.augment-dim = 9, and a configuration that does not fit is refused before any work, naming the key
/// and the value the file needs (never "resume").
/// </summary>
public sealed class AugmentDimTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ect-augment-").FullName;
    private string DataPath => Path.Combine(_dir, "train-images-idx3-ubyte");
    private static readonly SongUNetConfig Tiny = SongUNetConfig.DdpmPP(32, 1, 0, 4, [1, 2], 1, [16], 0.1);

    public AugmentDimTests() => TinyCheckpointFixture.WriteIdx(DataPath, 16);

    public void Dispose() { try { Directory.Delete(_dir, true); } catch (IOException) { } }

    /// <summary>A plain EDM-style state dict (no metadata: what scripts/edm-pkl-to-safetensors.py writes) of a random network.</summary>
    private string PlainStateDict(string name, SongUNetConfig config)
    {
        torch.set_num_threads(1);
        torch.random.manual_seed(5);
        using var net = new EdmPrecond(config);
        var path = Path.Combine(_dir, name);
        Safetensors.Write(path, net.state_dict());
        return path;
    }

    private Akka.Configuration.Config Config(string init, params string[] more) => EctConfiguration.Load(null, [
        "ect.run.engine=torch", $"ect.data.path={DataPath}", "ect.network.model-channels=4", "ect.network.channel-mult=[1,2]",
        "ect.network.num-blocks=1", "ect.network.attn-resolutions=[16]", $"ect.network.init={init}", .. more]);

    [Fact]
    public void A_state_dict_with_map_augment_is_refused_with_augment_dim_0_naming_the_key_and_the_value()
    {
        var file = PlainStateDict("edm-augment.safetensors", Tiny with { AugmentDim = 9 });
        Safetensors.Read(file).Tensors.Should().ContainKey("model.map_augment.weight");

        var act = () => Engines.Check(RunSettings.From(Config(file)));
        var e = act.Should().Throw<ConfigurationException>().Which;
        e.Message.Should().Contain("ect.network.init").And.Contain(file)
            .And.Contain("ect.network.augment-dim = 9").And.Contain("model.map_augment.weight [4, 9]");
        e.Message.Should().NotContainAny("resume", "model-channels =", "num-blocks =");

        // The other way round: the configuration asks for the layer, the file has none.
        var plain = PlainStateDict("edm-plain.safetensors", Tiny);
        var act2 = () => Engines.Check(RunSettings.From(Config(plain, "ect.network.augment-dim=9")));
        act2.Should().Throw<ConfigurationException>().WithMessage("*ect.network.augment-dim = 0*no model.map_augment.weight*")
            .Which.Message.Should().NotContain("resume");

        // Another width is named as such too.
        var act3 = () => Engines.Check(RunSettings.From(Config(plain, "ect.network.model-channels=8")));
        act3.Should().Throw<ConfigurationException>().WithMessage("*ect.network.model-channels = 4*configured: 8*");
    }

    [Fact]
    public void A_state_dict_with_map_augment_loads_tunes_and_samples_with_augment_dim_9()
    {
        var file = PlainStateDict("edm-augment.safetensors", Tiny with { AugmentDim = 9 });
        Engines.Check(RunSettings.From(Config(file, "ect.network.augment-dim=9"))); // accepted before any work
        var net = RunSettings.From(Config(file, "ect.network.augment-dim=9")).Network.SongUNet(32, 1, 0);
        net.AugmentDim.Should().Be(9);

        var o = new TorchEngineOptions(net, BatchSize: 4, Seed: 3, Threads: 1, EmaBeta: 0.9, PretrainLr: 1e-3, Pretrain: new PretrainSettings(-1.2, 1.2),
            TuningLr: 1e-3, Tuning: new TuningSettings(OptimizerKind.RAdam, -1.1, 2.0, MappingKind.Sigmoid, Q: 2, K: 8, B: 1, C: 0)) { InitWeights = file };
        using var engine = new TorchTrainingEngine(o, Path.Combine(_dir, "scratch"));
        var start = engine.WeightsDigest();
        engine.SetPhase(Phases.Tuning);
        using var data = Ect.Data.Sources.DatasetSource.Load(DataPath);
        var assembler = new BatchAssembler(data, 4, 3, new BatchOptions { Resolution = 32, UseLabels = false });
        for (var i = 0; i < 6; i++) using (var b = new Batch(assembler.Next(), 4, "")) double.IsFinite(engine.Step(b).Loss).Should().BeTrue();
        engine.WeightsDigest().Should().NotBe(start, "the tuning steps changed the network");

        var ckpt = Path.Combine(_dir, "ckpt.safetensors");
        using (var image = engine.Capture(new Dictionary<string, string> { ["step"] = "6" })) image.WriteTo(ckpt);
        var saved = Safetensors.Read(ckpt).Tensors;
        var original = Safetensors.Read(file).Tensors;
        saved["net/model.map_augment.weight"].allclose(original["model.map_augment.weight"], rtol: 0, atol: 0).Should()
            .BeTrue("without augmentation the labels are zero: map_augment (no bias) gets no gradient and keeps the file's weights");
        saved["net/model.enc.32x32_conv.weight"].allclose(original["model.enc.32x32_conv.weight"], rtol: 0, atol: 0).Should()
            .BeFalse("the rest of the network was tuned (the zero-initialised output layer passes gradients on from the second step)");

        using var ema = engine.CaptureEma();
        ema.Generate(2, 2, 1, 80, 0.821).Should().OnlyContain(v => float.IsFinite(v));
    }

    [Fact]
    public void No_augment_labels_equal_zero_augment_labels()
    {
        torch.set_num_threads(1);
        torch.random.manual_seed(2);
        using var net = new SongUNet(Tiny with { AugmentDim = 9, Dropout = 0 });
        net.eval();
        using (torch.no_grad())
        {
            // map_augment's weights are random (not zero): only the zero input makes its contribution vanish.
            foreach (var (name, p) in net.named_parameters())
                if (name == "map_augment.weight") p.abs().sum().item<float>().Should().BeGreaterThan(0);
            using var x = randn(2, 1, 32, 32);
            using var noise = tensor(new float[] { 0.3f, -0.7f });
            // The output conv starts at zero (EDM's init_zero): compare the embedding that map_augment feeds.
            Tensor Embedding(Tensor? aug)
            {
                var acts = net.ExtractActivations(x, noise, null, aug);
                foreach (var (k, v) in acts) if (k != "map_layer0") v.Dispose();
                return acts["map_layer0"];
            }
            using var none = Embedding(null);
            using var zeros = Embedding(torch.zeros(2, 9));
            using var ones = Embedding(torch.ones(2, 9));
            none.allclose(zeros, rtol: 0, atol: 0).Should().BeTrue("EDM skips map_augment without labels, which equals zero labels (no bias)");
            none.allclose(ones, rtol: 0, atol: 0).Should().BeFalse("the layer is wired in: non-zero labels change the output");
        }
    }
}
