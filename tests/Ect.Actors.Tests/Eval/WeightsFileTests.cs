using System.Text.Json;
using Ect.Actors.Configuration;
using Ect.Actors.Engine;
using Ect.Actors.Evaluation;
using Ect.Compute.IO;
using Ect.Compute.Losses;
using Ect.Compute.Optim;
using Ect.Compute.Preconditioning;
using Ect.Compute.Training;
using FluentAssertions;
using Xunit;
using Ect.Actors.Checkpoints;

namespace Ect.Actors.Tests.Eval;

/// <summary>`ect export`, weights files, ect.network.init (a run that starts from a teacher) and the teacher's few-step baseline.</summary>
[Collection("Console")]
public sealed class WeightsFileTests(TinyCheckpointFixture f) : IClassFixture<TinyCheckpointFixture>
{
    private static (int Code, string Out, string Err) RunEct(params string[] args) => CliHarness.Run(args);

    private string Exported(string name)
    {
        var path = Path.Combine(f.Dir, name);
        if (!File.Exists(path)) WeightsFile.Export(f.Checkpoint, path);
        return path;
    }

    [Fact]
    public void Export_keeps_only_the_EMA_under_EDM_keys_with_the_network_description()
    {
        var (code, output, err) = RunEct("export", f.Checkpoint, "--out", Path.Combine(f.Dir, "cli.safetensors"));
        code.Should().Be(0, err);
        output.Should().Contain("wrote").And.Contain("sha256");

        var c = Safetensors.Read(Path.Combine(f.Dir, "cli.safetensors"));
        using var net = new EctPrecond(f.Config);
        c.Tensors.Keys.Should().BeEquivalentTo(net.state_dict().Keys, "EDM's own state-dict keys, no 'ema/' or 'net/' prefix, no optimizer");
        c.Metadata.Should().Contain("ect.format", WeightsFile.FormatName).And.Contain("user.step", "3")
            .And.Contain("user.precond", "ect").And.ContainKey("user.network-config").And.ContainKey("user.source-sha256");
        c.Metadata["user.source-sha256"].Should().Be(WeightsFile.Sha256(f.Checkpoint));
        foreach (var t in c.Tensors.Values) t.Dispose();

        // `ect eval` reads it like the checkpoint: the same EMA network.
        using var model = CheckpointModel.Load(Path.Combine(f.Dir, "cli.safetensors"));
        StateDigest.Compute(model.Net).Should().Be(f.EmaDigest);
        model.Step.Should().Be(3);
    }

    [Fact]
    public void Export_refuses_a_file_that_is_not_a_training_checkpoint()
    {
        var (code, _, err) = RunEct("export", Exported("x.safetensors"), "--out", Path.Combine(f.Dir, "y.safetensors"));
        code.Should().Be(1);
        err.Should().Contain("x.safetensors").And.Contain("not an ECT training checkpoint");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void A_run_started_from_weights_begins_with_those_weights_in_the_network_and_the_EMA(bool fromExport)
    {
        var init = fromExport ? Exported("init.safetensors") : f.Checkpoint;
        using var engine = new TorchTrainingEngine(Options() with { InitWeights = init }, Path.Combine(f.Dir, "scratch-init"));
        engine.EmaDigest().Should().Be(f.EmaDigest);
        engine.WeightsDigest().Should().Be(f.EmaDigest, "ECT tunes the teacher's EMA weights: the trained network starts from them too");

        using var fresh = new TorchTrainingEngine(Options(), Path.Combine(f.Dir, "scratch-fresh"));
        fresh.EmaDigest().Should().NotBe(f.EmaDigest, "without init the weights are EDM's random initialisation");
    }

    [Fact]
    public void Weights_for_another_architecture_are_refused_before_any_work_naming_the_key()
    {
        var init = Exported("arch.safetensors");
        var config = EctConfiguration.Load(null, [
            "ect.run.engine=torch", $"ect.data.path={f.DataPath}", "ect.network.model-channels=8", "ect.network.channel-mult=[1,2]",
            "ect.network.num-blocks=1", "ect.network.attn-resolutions=[16]", $"ect.network.init={init}"]);
        var act = () => Engines.Check(RunSettings.From(config));
        act.Should().Throw<ConfigurationException>().WithMessage("*ect.network.init*another network*model-channels 4*model-channels 8*");

        var same = EctConfiguration.Load(null, [
            "ect.run.engine=torch", $"ect.data.path={f.DataPath}", "ect.network.model-channels=4", "ect.network.channel-mult=[1,2]",
            "ect.network.num-blocks=1", "ect.network.attn-resolutions=[16]", "ect.network.dropout=0.2", $"ect.network.init={init}"]);
        Engines.Check(RunSettings.From(same)); // dropout may differ: it changes no tensor

        var missing = EctConfiguration.Load(null, ["ect.run.engine=torch", $"ect.data.path={f.DataPath}", "ect.network.init=no/such/teacher.safetensors"]);
        var act2 = () => Engines.Check(RunSettings.From(missing));
        act2.Should().Throw<ConfigurationException>().WithMessage("*ect.network.init*no/such/teacher.safetensors*does not exist*");
    }

    [Fact]
    public void A_plain_state_dict_with_a_wrong_shape_is_refused_naming_the_tensor()
    {
        var c = Safetensors.Read(Exported("plain-src.safetensors"));
        var tensors = c.Tensors.ToDictionary();
        var key = "model.enc.32x32_conv.weight";
        tensors[key] = TorchSharp.torch.zeros(8, 1, 3, 3);
        var plain = Path.Combine(f.Dir, "plain-bad.safetensors");
        Safetensors.Write(plain, tensors); // no metadata: an EDM export, only the shapes can be checked
        var act = () => new TorchTrainingEngine(Options() with { InitWeights = plain }, Path.Combine(f.Dir, "scratch-bad")).Dispose();
        act.Should().Throw<InvalidDataException>().WithMessage($"*{plain}*{key}*");
        foreach (var t in tensors.Values) t.Dispose();
    }

    [Fact]
    public void The_teacher_is_sampled_with_the_consistency_sampler_as_a_few_step_baseline()
    {
        var (code, output, err) = RunEct("eval", "--teacher", f.Checkpoint, "--sampler", "consistency", "--steps", "2", "--num", "8",
            "--threads", "1", "--cache-dir", f.CacheDir, "--data", f.DataPath, "--out", Path.Combine(f.Dir, "teacher2.json"),
            "--grid", Path.Combine(f.Dir, "teacher2.png"), "--grid-count", "4");
        code.Should().Be(0, err);
        output.Should().Contain("consistency sampler, 2 step(s)").And.Contain("FD-ResNet18 = ").And.Contain("teacher2.png (4 images");
        var png = File.ReadAllBytes(Path.Combine(f.Dir, "teacher2.png"));
        png.Take(4).Should().Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' });
        // The named grid is for people (each image >= 64 px), the raw one beside it keeps the network's size.
        var raw = File.ReadAllBytes(Path.Combine(f.Dir, "teacher2.raw.png"));
        int resolution = f.Config.ImgResolution;
        System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(raw.AsSpan(16)).Should().Be(2 * resolution, "2 x 2 raw tiles");
        System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(20)).Should().BeGreaterThanOrEqualTo(2 * 64, "2 rows of >= 64 px tiles");
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(f.Dir, "teacher2.json")));
        json.RootElement.GetProperty("precond").GetString().Should().Be("edm", "the teacher is sampled as the EDM denoiser it is");
        json.RootElement.GetProperty("sampler").GetString().Should().Be("consistency");
    }

    private TorchEngineOptions Options() => new(f.Config, BatchSize: 4, Seed: 11, Threads: 1, EmaBeta: 0.9,
        PretrainLr: 1e-3, Pretrain: new PretrainSettings(-1.2, 1.2),
        TuningLr: 1e-4, Tuning: new TuningSettings(OptimizerKind.RAdam, -1.1, 2.0, MappingKind.Sigmoid, Q: 2, K: 8, B: 1, C: 0));
}
