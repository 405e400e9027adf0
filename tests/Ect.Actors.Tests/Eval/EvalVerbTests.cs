using Ect.Actors.Configuration;
using System.Buffers.Binary;
using System.Text.Json;
using Ect.Actors.Engine;
using Ect.Actors.Evaluation;
using Ect.Compute.IO;
using Ect.Compute.Losses;
using Ect.Compute.Networks;
using Ect.Compute.Optim;
using Ect.Compute.Training;
using Ect.Data;
using Ect.Data.Sources;
using FluentAssertions;
using Xunit;
using Ect.Actors.Checkpoints;

namespace Ect.Actors.Tests.Eval;

/// <summary>
/// A tiny real network trained for 3 steps by TorchTrainingEngine (2 pretraining, 1 tuning), checkpointed through
/// Capture, and a 24-image IDX dataset; shared by the tests of this class.
/// </summary>
public sealed class TinyCheckpointFixture : IDisposable
{
    public string Dir { get; } = Directory.CreateTempSubdirectory("ect-eval-").FullName;
    public string DataPath => Path.Combine(Dir, "train-images-idx3-ubyte");
    public string Checkpoint => Path.Combine(Dir, "ckpt-000003.safetensors");
    /// <summary>The same run after its 2 pretraining steps (an EDM denoiser: user.precond = edm).</summary>
    public string PretrainCheckpoint => Path.Combine(Dir, "ckpt-000002.safetensors");
    public string CacheDir => Path.Combine(Dir, "stats");
    public SongUNetConfig Config { get; } = SongUNetConfig.DdpmPP(32, 1, 0, 4, [1, 2], 1, [16], 0.1);
    public string EmaDigest { get; }

    public TinyCheckpointFixture()
    {
        WriteIdx(DataPath, 24);
        var o = new TorchEngineOptions(Config, BatchSize: 4, Seed: 7, Threads: 1, EmaBeta: 0.9,
            PretrainLr: 1e-3, Pretrain: new PretrainSettings(-1.2, 1.2),
            TuningLr: 1e-4, Tuning: new TuningSettings(OptimizerKind.RAdam, -1.1, 2.0, MappingKind.Sigmoid, Q: 2, K: 8, B: 1, C: 0.06)) { DataPath = DataPath };
        using var data = DatasetSource.Load(DataPath);
        var assembler = new BatchAssembler(data, 4, 7, new BatchOptions { Resolution = 32, UseLabels = false });
        using var engine = new TorchTrainingEngine(o, Path.Combine(Dir, "scratch"));
        engine.SetPhase(Phases.Pretrain);
        for (var i = 0; i < 2; i++) using (var b = new Batch(assembler.Next(), 4, "")) engine.Step(b);
        using (var image = engine.Capture(new Dictionary<string, string> { ["step"] = "2", ["kimg"] = "0.008", ["phase"] = "pretrain" }))
            image.WriteTo(PretrainCheckpoint);
        engine.SetPhase(Phases.Tuning);
        using (var b = new Batch(assembler.Next(), 4, "")) engine.Step(b);
        using (var image = engine.Capture(new Dictionary<string, string> { ["step"] = "3", ["kimg"] = "0.012", ["phase"] = "tuning" }))
            image.WriteTo(Checkpoint);
        EmaDigest = engine.EmaDigest();
    }

    public static void WriteIdx(string path, int images)
    {
        var b = new byte[16 + images * 28 * 28];
        BinaryPrimitives.WriteInt32BigEndian(b, 2051);
        BinaryPrimitives.WriteInt32BigEndian(b.AsSpan(4), images);
        BinaryPrimitives.WriteInt32BigEndian(b.AsSpan(8), 28);
        BinaryPrimitives.WriteInt32BigEndian(b.AsSpan(12), 28);
        var rng = new Random(3);
        // Blobs of different brightness and place, so the images (and their features) differ.
        for (var n = 0; n < images; n++)
        {
            int cx = rng.Next(6, 22), cy = rng.Next(6, 22), r = rng.Next(3, 8), v = rng.Next(80, 256);
            for (var y = 0; y < 28; y++)
            for (var x = 0; x < 28; x++)
                b[16 + n * 784 + y * 28 + x] = (byte)((x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r ? v : rng.Next(0, 30));
        }
        File.WriteAllBytes(path, b);
    }

    public void Dispose() => Directory.Delete(Dir, true);
}

[Collection("Console")]
public sealed class EvalVerbTests(TinyCheckpointFixture f) : IClassFixture<TinyCheckpointFixture>
{
    private static (int Code, string Out, string Err) RunEct(params string[] args) => CliHarness.Run(args);

    private string[] Eval(string outFile, params string[] more) =>
        ["eval", "--checkpoint", f.Checkpoint, "--num", "16", "--threads", "1", "--batch", "8",
         "--cache-dir", f.CacheDir, "--out", Path.Combine(f.Dir, outFile), .. more];

    [Fact]
    public void Checkpoint_metadata_rebuilds_the_EMA_network_bit_for_bit()
    {
        using var model = CheckpointModel.Load(f.Checkpoint);
        model.Config.ToString().Should().Be(f.Config.ToString());
        model.Kind.Should().Be(PrecondKind.Ect);
        model.TrainedAs.Should().Be(PrecondKind.Ect, "the checkpoint was taken in the tuning phase");
        model.Step.Should().Be(3);
        model.Phase.Should().Be("tuning");
        model.DataPath.Should().Be(f.DataPath);
        StateDigest.Compute(model.Net).Should().Be(f.EmaDigest);
        model.Net.training.Should().BeFalse();

        // TrainState's own reader still sees the caller's keys (nothing the daemon relies on was replaced).
        var meta = Safetensors.Read(f.Checkpoint).Metadata;
        meta.Should().Contain("user.step", "3").And.Contain("user.kimg", "0.012").And.ContainKey("user.network-config")
            .And.Contain("user.precond", "ect").And.Contain("user.sigma-min", "0.003").And.Contain("user.sigma-data", "0.5");
    }

    [Fact]
    public void Eval_prints_a_finite_FD_ResNet18_writes_the_json_and_repeats_bit_for_bit_with_the_same_seed()
    {
        var (code, output, err) = RunEct(Eval("a.json", "--metric", "fd-resnet18", "--steps", "2", "--seed", "5"));
        code.Should().Be(0, err);
        output.Should().Contain("FD-ResNet18 = ").And.NotContain("FID");
        err.Should().Contain("Only 16 feature vectors for dimension 512", "N = 16 < 512 gives the rank warning");

        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(f.Dir, "a.json")));
        var r = json.RootElement;
        var value = r.GetProperty("value").GetDouble();
        double.IsFinite(value).Should().BeTrue();
        value.Should().BePositive();
        r.GetProperty("metric").GetString().Should().Be("FD-ResNet18");
        r.GetProperty("num").GetInt32().Should().Be(16);
        r.GetProperty("steps").GetInt32().Should().Be(2);
        r.GetProperty("t").EnumerateArray().Select(e => e.GetDouble()).Should().Equal(80, 0.821);
        r.GetProperty("seed").GetInt32().Should().Be(5);
        r.GetProperty("checkpoint").GetString().Should().Be(f.Checkpoint);
        r.GetProperty("step").GetInt64().Should().Be(3);
        r.GetProperty("kimg").GetDouble().Should().Be(0.012);
        r.GetProperty("reference_images").GetInt32().Should().Be(16, "the dataset path came from the checkpoint, and --ref-num defaults to --num (16 of its 24 images)");
        r.GetProperty("seconds").GetDouble().Should().BePositive();

        var (code2, output2, err2) = RunEct(Eval("b.json", "--steps", "2", "--seed", "5"));
        code2.Should().Be(0, err2);
        output2.Should().Contain("cached");
        using var json2 = JsonDocument.Parse(File.ReadAllText(Path.Combine(f.Dir, "b.json")));
        json2.RootElement.GetProperty("value").GetDouble().Should().Be(value, "same seed, same batch size, same threads");

        var (code3, _, err3) = RunEct(Eval("c.json", "--steps", "2", "--seed", "6"));
        code3.Should().Be(0, err3);
        using var json3 = JsonDocument.Parse(File.ReadAllText(Path.Combine(f.Dir, "c.json")));
        json3.RootElement.GetProperty("value").GetDouble().Should().NotBe(value, "another seed draws other images");
    }

    [Fact]
    public void Teacher_with_heun_nfe_samples_with_the_edm_sampler()
    {
        var (code, output, err) = RunEct("eval", "--teacher", f.Checkpoint, "--sampler", "heun", "--nfe", "5", "--num", "8",
            "--threads", "1", "--cache-dir", f.CacheDir, "--data", f.DataPath, "--out", Path.Combine(f.Dir, "heun.json"));
        code.Should().Be(0, err);
        output.Should().Contain("heun sampler, 3 step(s), 5 NFE").And.Contain("FD-ResNet18 = ");
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(f.Dir, "heun.json")));
        json.RootElement.GetProperty("steps").GetInt32().Should().Be(3);
        json.RootElement.GetProperty("sampler").GetString().Should().Be("heun");
        json.RootElement.GetProperty("precond").GetString().Should().Be("edm");
    }

    /// <summary>
    /// A pretraining checkpoint (or the shipped teacher) has two few-step readings: `--checkpoint` wraps it in ECT's
    /// preconditioning (ECT's model at tuning step 0: eval mode's sigma_min boundary), `--teacher` in EDM's. They differ,
    /// and the user is told which is which (session 19 compared a `--checkpoint` FD with `--teacher` ones: 411.65 vs 409.62).
    /// </summary>
    [Fact]
    public void A_pretraining_checkpoint_is_ECT_at_step_0_with_checkpoint_and_EDMs_denoiser_with_teacher_and_the_note_says_so()
    {
        string[] common = ["--sampler", "consistency", "--steps", "2", "--num", "8", "--threads", "1", "--cache-dir", f.CacheDir, "--data", f.DataPath];
        var (code, _, err) = RunEct(["eval", "--checkpoint", f.PretrainCheckpoint, .. common, "--out", Path.Combine(f.Dir, "pre-ect.json")]);
        code.Should().Be(0, err);
        err.Should().Contain("is from pretrain").And.Contain("ECT's model at tuning step 0").And.Contain("`--teacher CK`");
        var (code2, _, err2) = RunEct(["eval", "--teacher", f.PretrainCheckpoint, .. common, "--out", Path.Combine(f.Dir, "pre-edm.json")]);
        code2.Should().Be(0, err2);
        err2.Should().NotContain("tuning step 0", "--teacher asked for the EDM denoiser");

        using var ect = JsonDocument.Parse(File.ReadAllText(Path.Combine(f.Dir, "pre-ect.json")));
        using var edm = JsonDocument.Parse(File.ReadAllText(Path.Combine(f.Dir, "pre-edm.json")));
        ect.RootElement.GetProperty("precond").GetString().Should().Be("ect");
        ect.RootElement.GetProperty("trained_as").GetString().Should().Be("edm");
        edm.RootElement.GetProperty("precond").GetString().Should().Be("edm");
        ect.RootElement.GetProperty("value").GetDouble().Should().NotBe(edm.RootElement.GetProperty("value").GetDouble(),
            "the sigma_min boundary changes c_skip and c_out, so the same seed gives other samples");
    }

    [Fact]
    public void Bad_input_gives_a_clear_message_and_a_non_zero_exit()
    {
        var missing = Path.Combine(f.Dir, "nope.safetensors");
        Expect(RunEct("eval", "--checkpoint", missing, "--num", "16"), missing, "does not exist");
        Expect(RunEct(Eval("x.json", "--metric", "inception")), "--metric inception", "unknown metric");
        Expect(RunEct(Eval("x.json", "--metric", "fid")), "--inception-weights", "fd-resnet18");
        Expect(RunEct("eval", "--checkpoint", f.Checkpoint, "--num", "1"), "--num 1", "at least 2 images");
        Expect(RunEct("eval", "--checkpoint", f.Checkpoint), "--num N is required");
        Expect(RunEct(Eval("x.json", "--t", "0.8,80")), "times must decrease");
        Expect(RunEct("eval", "--checkpoint", f.Checkpoint, "--sampler", "heun", "--num", "4"), "--teacher");

        // A checkpoint from before the network metadata existed.
        var old = Path.Combine(f.Dir, "old.safetensors");
        var c = Safetensors.Read(f.Checkpoint);
        Safetensors.Write(old, c.Tensors, c.Metadata.Where(kv => kv.Key != "user.network-config").ToDictionary());
        foreach (var t in c.Tensors.Values) t.Dispose();
        Expect(RunEct("eval", "--checkpoint", old, "--num", "16", "--cache-dir", f.CacheDir), old, "user.network-config", "older version");
        File.Exists(Path.ChangeExtension(old, ".fd-resnet18-1step.json")).Should().BeFalse();
    }

    [Fact]
    public void Eval_of_a_run_directory_uses_its_latest_checkpoint_writes_beside_the_run_and_never_overwrites_a_result()
    {
        var run = Directory.CreateTempSubdirectory("ect-eval-run-").FullName;
        try
        {
            var ckpts = Directory.CreateDirectory(Path.Combine(run, "checkpoints")).FullName;
            var older = Path.Combine(ckpts, "ckpt-000000001.ckpt");
            var latest = Path.Combine(ckpts, "ckpt-000000003.ckpt");
            File.Copy(f.Checkpoint, latest); // step 3 in its metadata
            var c = Safetensors.Read(f.Checkpoint);
            Safetensors.Write(older, c.Tensors, c.Metadata.ToDictionary(kv => kv.Key, kv => kv.Key == "user.step" ? "1" : kv.Value));
            foreach (var t in c.Tensors.Values) t.Dispose();
            string[] args = ["eval", "--checkpoint", run, "--num", "6", "--threads", "1", "--batch", "6", "--cache-dir", f.CacheDir];

            var (code, output, err) = RunEct(args);
            code.Should().Be(0, err);
            output.Should().Contain(latest, "a run directory means its latest checkpoint")
                .And.Contain($"the first 6 images of '{f.DataPath}'").And.Contain("--ref-num defaults to --num");
            var first = Path.Combine(run, "eval", "ckpt-000000003.fd-resnet18-consistency-1step.json");
            output.Should().Contain($"wrote {first}");
            using (var json = JsonDocument.Parse(File.ReadAllText(first)))
            {
                json.RootElement.GetProperty("reference_images").GetInt32().Should().Be(6, "--ref-num defaults to --num (24 images in the dataset)");
                json.RootElement.GetProperty("checkpoint").GetString().Should().Be(latest);
            }
            Directory.EnumerateFiles(ckpts).Should().BeEquivalentTo([older, latest], "no result inside checkpoints/");

            (code, output, err) = RunEct(args);
            code.Should().Be(0, err);
            var second = Path.Combine(run, "eval", "ckpt-000000003.fd-resnet18-consistency-1step-2.json");
            output.Should().Contain($"wrote {second}", "the earlier result keeps its name");
            File.Exists(first).Should().BeTrue();

            var firstText = File.ReadAllText(first);
            (code, _, err) = RunEct([.. args, "--out", first]);
            code.Should().Be(1);
            err.Should().Contain(first).And.Contain("exists").And.Contain("--overwrite");
            File.ReadAllText(first).Should().Be(firstText);
            (code, _, err) = RunEct([.. args, "--out", first, "--overwrite", "--ref-num", "8"]);
            code.Should().Be(0, err);
            using (var json = JsonDocument.Parse(File.ReadAllText(first)))
                json.RootElement.GetProperty("reference_images").GetInt32().Should().Be(8);
        }
        finally { Directory.Delete(run, true); }
    }

    [Fact]
    public void A_network_config_that_does_not_fit_the_tensors_is_refused_naming_the_file_and_tensor()
    {
        var wrong = Path.Combine(f.Dir, "wrong.safetensors");
        var c = Safetensors.Read(f.Checkpoint);
        var meta = c.Metadata.ToDictionary();
        meta["user.network-config"] = CheckpointModel.SerializeConfig(f.Config with { ModelChannels = 8 });
        Safetensors.Write(wrong, c.Tensors, meta);
        foreach (var t in c.Tensors.Values) t.Dispose();
        var act = () => CheckpointModel.Load(wrong);
        act.Should().Throw<InvalidDataException>().WithMessage($"*{wrong}*ema/*shape*");
    }

    [Fact]
    public void Consistency_times_are_the_papers_for_one_and_two_steps_and_a_decreasing_edm_schedule_beyond()
    {
        SamplerChoice.ConsistencyTimes(1).Should().Equal(80.0);
        SamplerChoice.ConsistencyTimes(2).Should().Equal(80.0, 0.821);
        var t4 = SamplerChoice.ConsistencyTimes(4);
        t4.Should().HaveCount(4).And.BeInDescendingOrder().And.OnlyContain(t => t > 0.002);
        t4[0].Should().Be(80.0);
    }

    private static void Expect((int Code, string Out, string Err) r, params string[] parts)
    {
        r.Code.Should().NotBe(0, r.Out);
        r.Err.Should().StartWith("ect eval:");
        foreach (var p in parts) r.Err.Should().Contain(p);
        r.Err.Should().NotContain("   at ", "no stack trace for a user mistake");
    }

    [Fact]
    public void Class_on_an_unconditional_network_is_refused_naming_the_file()
    {
        var (code, _, err) = RunEct(Eval("class.json", "--class", "0"));
        code.Should().Be(1);
        err.Should().Contain("--class 0").And.Contain("unconditional DDPM++").And.Contain(f.Checkpoint);
        File.Exists(Path.Combine(f.Dir, "class.json")).Should().BeFalse();
    }
}
