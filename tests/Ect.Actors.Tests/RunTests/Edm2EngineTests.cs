using System.Security.Cryptography;
using Ect.Actors.Cli;
using Ect.Actors.Configuration;
using Ect.Actors.Engine;
using Ect.Actors.Persistence;
using Ect.Actors.Persistence.Events;
using Ect.Compute.IO;
using Ect.Compute.Training;
using FluentAssertions;
using Xunit;
using Xunit.Abstractions;
using static Ect.Actors.Tests.RunTests.DaemonHarness;

namespace Ect.Actors.Tests.RunTests;

/// <summary>
/// ect.network.type = edm2 through the daemon (issue 14): a tiny class-conditional EDM2 on Fashion-MNIST with the imgnet
/// branch's training step, pretrained one step and tuned three; its power-function EMAs in checkpoints and snapshots;
/// exact resume; `ect ema reconstruct` on its snapshots; a data set without labels refused for a conditional network.
/// </summary>
[Collection("Console")]
public class Edm2EngineTests(ITestOutputHelper output)
{
    public static readonly string[] TinyEdm2 =
    [
        "run.engine=torch", "run.threads=1", "data.batch-size=4", "data.max-images=64", "data.use-labels=on", "data.resolution=16",
        "network.type=edm2", "network.model-channels=16", "network.channel-mult=[1,2]", "network.num-blocks=1",
        "network.attn-resolutions=[]", "network.dropout=0.1", "network.dropout-res=8", "network.init=\"\"",
        "tuning.optimizer=adam", "tuning.c=0.06", "tuning.q=4", "tuning.p-mean=-0.8", "tuning.p-std=1.6",
        "edm2.lr-decay-batches=2", "edm2.phema-stds=[0.05,0.1]", "edm2.phema-snapshot-every-steps=1",
        "pretrain.steps=1", "tuning.steps=3", "checkpoint.every-steps=1", "evaluation.every-steps=0",
        "evaluation.evaluators=[{type=sample-grid,sampling-steps=[1,2],count=4}]",
        "tuning.kimg-per-tick=0.004", "tuning.double-ticks=1",
        "display.mode=off", "control.enabled=off",
    ];

    private static RunSettings Settings(params string[] sets)
    {
        const string data = "/usr/share/datasets/fashion-mnist";
        Directory.Exists(data).Should().BeTrue($"Fashion-MNIST is installed at {data} (apt-get install dataset-fashion-mnist)");
        return RunSettings.From(EctConfiguration.Load(null, TinyEdm2.Concat(sets)));
    }

    /// <summary>Starts `ect train` and SIGKILLs it when its progress line shows step <paramref name="step"/> or later; true when the kill landed (exit 137).</summary>
    private async Task<bool> KillAtStep(IEnumerable<string> args, int step)
    {
        using var p = EctProcess.Start(args);
        var reached = new TaskCompletionSource();
        // Progress lines come every log interval and may skip a step: any step >= the one asked for will do.
        var line = new System.Text.RegularExpressions.Regex(@"(pretrain|tuning)\s+step (\d+)/");
        p.OutputDataReceived += (_, e) =>
        {
            if (e.Data is { } d && line.Match(d) is { Success: true } m && int.Parse(m.Groups[2].Value) >= step) reached.TrySetResult();
        };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        await Task.WhenAny(reached.Task, p.WaitForExitAsync(), Task.Delay(TimeSpan.FromMinutes(3)));
        if (p.HasExited || !reached.Task.IsCompleted) { output.WriteLine($"no step {step} before exit/timeout"); if (!p.HasExited) p.Kill(); return false; }
        p.Kill(); // SIGKILL
        await p.WaitForExitAsync();
        return p.ExitCode == 128 + 9;
    }

    private static string Sha(string file) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(file)));

    private static Dictionary<string, string> PhemaTensorDigests(string checkpoint)
    {
        var c = Safetensors.Read(checkpoint);
        try
        {
            return c.Tensors.Where(kv => kv.Key.StartsWith("phema-", StringComparison.Ordinal))
                .ToDictionary(kv => kv.Key, kv => StateDigest.Compute([(kv.Key, kv.Value)]));
        }
        finally { foreach (var t in c.Tensors.Values) t.Dispose(); }
    }

    private static string LastCheckpoint(string runDir) => Directory.GetFiles(Path.Combine(runDir, "checkpoints"), "ckpt-*.ckpt").Order(StringComparer.Ordinal).Last();

    [Fact]
    [Trait("Category", "Slow")]
    public async Task A_stopped_and_continued_edm2_run_ends_with_the_bits_of_an_uninterrupted_one()
    {
        var a = NewRunDir();
        (await RunDaemonAsync(a, Settings(), Engines.Torch)).ExitCode.Should().Be(0);
        var reference = Finished(a);
        reference.Step.Should().Be(4);
        RunJournal.Events<PhaseChanged>(RunJournal.Read(a)).Select(p => p.Phase).Should().Contain("tuning");
        Directory.GetFiles(Path.Combine(a, "samples"), "grid-*.png").Should().NotBeEmpty("the sample grids ran on the EDM2 EMA with class labels");
        var ckpt = Safetensors.Read(LastCheckpoint(a));
        try
        {
            ckpt.Tensors["net/unet.emb_label.weight"].shape.Should().Equal([32, 10], "class-conditional: label_dim = Fashion-MNIST's 10 classes");
            ckpt.Tensors.Keys.Should().Contain(["phema-0.050/unet.out_gain", "phema-0.100/unet.out_conv.weight"]);
            ckpt.Metadata["user.network-kind"].Should().Be("edm2");
            Edm2TrainingEngine.DeserializeConfig(ckpt.Metadata["user.edm2-config"]).LabelDim.Should().Be(10);
        }
        finally { foreach (var t in ckpt.Tensors.Values) t.Dispose(); }
        var snapshots = Directory.GetFiles(Path.Combine(a, "phema"), "phema-*.safetensors").Order(StringComparer.Ordinal).ToList();
        snapshots.Select(Path.GetFileName).Should().Equal(["phema-000000002.safetensors", "phema-000000003.safetensors", "phema-000000004.safetensors"],
            "a snapshot after every tuning step (steps 2-4; step 1 is pretraining)");

        // Stopped inside pretraining's end and within tuning, then continued.
        var b = NewRunDir();
        (await RunDaemonAsync(b, Settings("run.max-steps=1"), Engines.Torch)).Step.Should().Be(1);
        (await RunDaemonAsync(b, Settings("run.max-steps=3"), Engines.Torch)).Step.Should().Be(3);
        (await RunDaemonAsync(b, Settings(), Engines.Torch)).ExitCode.Should().Be(0);
        var got = Finished(b);
        got.WeightsSha256.Should().Be(reference.WeightsSha256);
        got.EmaSha256.Should().Be(reference.EmaSha256);
        PhemaTensorDigests(LastCheckpoint(b)).Should().Equal(PhemaTensorDigests(LastCheckpoint(a)), "the power-function EMAs resume to the same bits");
        foreach (var s in snapshots)
            Sha(Path.Combine(b, "phema", Path.GetFileName(s))).Should().Be(Sha(s), $"{Path.GetFileName(s)} is the same file in the continued run");
        CheckpointStepsOnce(b).Should().Equal(1, 2, 3, 4);

        // Post-hoc EMA: the tracked std 0.05 at the last snapshot is that snapshot's phema-0.050; 0.07 lies between.
        var outFile = Path.Combine(a, "posthoc-0.05.safetensors");
        var (code, output, err) = CliHarness.Run("ema", "reconstruct", a, "--std", "0.05", "--out", outFile);
        code.Should().Be(0, err);
        output.Should().Contain("3 snapshot(s)");
        var rec = Safetensors.Read(outFile);
        var last = Safetensors.Read(snapshots[^1]);
        try
        {
            rec.Tensors.Keys.Should().BeEquivalentTo(last.Tensors.Keys.Where(k => k.StartsWith("phema-0.050/", StringComparison.Ordinal)).Select(k => k["phema-0.050/".Length..]));
            foreach (var (k, t) in rec.Tensors)
            {
                var expected = last.Tensors["phema-0.050/" + k];
                double diff = (t - expected).abs().max().item<float>();
                diff.Should().BeLessThan(1e-4 * (1 + expected.abs().max().item<float>()), k);
            }
            rec.Metadata.Should().ContainKey("user.edm2-config");
        }
        finally { foreach (var t in rec.Tensors.Values.Concat(last.Tensors.Values)) t.Dispose(); }
        CliHarness.Run("ema", "reconstruct", a, "--std", "0.07", "--out", Path.Combine(a, "posthoc-0.07.safetensors")).Code.Should().Be(0);

        // `ect export` writes the EMA under the network's keys; `ect eval` samples it (one class: --class K).
        var exported = Path.Combine(a, "export.safetensors");
        (code, _, err) = CliHarness.Run("export", a, "--out", exported);
        code.Should().Be(0, err);
        var ex = Safetensors.Read(exported);
        try { ex.Tensors.Keys.Should().Contain("unet.emb_label.weight").And.NotContain(k => k.StartsWith("ema/", StringComparison.Ordinal)); }
        finally { foreach (var t in ex.Tensors.Values) t.Dispose(); }
        string evalOut;
        (code, evalOut, err) = CliHarness.Run("eval", "--checkpoint", exported, "--steps", "1", "--num", "4", "--threads", "1", "--batch", "4",
            "--cache-dir", Path.Combine(a, "stats"), "--class", "3");
        code.Should().Be(0, err);
        evalOut.Should().Contain("EDM2").And.Contain("class 3 only");
        CliHarness.Run("inspect", LastCheckpoint(a)).Code.Should().Be(0);

        // The reconstructed weights start a new EDM2 run (ect.network.init), loaded by name.
        var c = NewRunDir();
        var init = Settings($"network.init=\"{outFile}\"", "pretrain.steps=0", "tuning.steps=1");
        (await RunDaemonAsync(c, init, Engines.Torch)).ExitCode.Should().Be(0);
    }

    /// <summary>
    /// The real `ect` process on the tiny EDM2 (2 pretraining + 10 tuning steps, a checkpoint every step): SIGKILLed twice at
    /// random instants while training and restarted, it ends with the weights, EMA, power-function EMAs and snapshot
    /// files of an uninterrupted process run.
    /// </summary>
    [Fact]
    [Trait("Category", "Slow")]
    public async Task A_killed_edm2_run_ends_with_the_bits_of_an_uninterrupted_one()
    {
        var dir = Directory.CreateTempSubdirectory("ect-kill-edm2-").FullName;
        var config = Path.Combine(dir, "edm2.conf");
        File.WriteAllLines(config, TinyEdm2.Where(k => !k.StartsWith("display.", StringComparison.Ordinal) && !k.StartsWith("control.", StringComparison.Ordinal))
            .Select(k => "ect." + k.Replace("pretrain.steps=1", "pretrain.steps=2").Replace("tuning.steps=3", "tuning.steps=10")
                )
            .Append("ect.display { mode = plain, log-interval-seconds = 0.1 }"));
        var reference = Path.Combine(dir, "reference");
        (await EctProcess.RunToEnd(output, EctProcess.TrainArgs(reference, [config]), timeout: TimeSpan.FromMinutes(5))).Code.Should().Be(0);
        var expected = Finished(reference);
        expected.Step.Should().Be(12);
        var killed = Path.Combine(dir, "killed");
        // Killed when the progress shows step 4, then step 9 (a checkpoint per step): each restart resumes from a
        // checkpoint the journal committed, not from the start.
        long committed = 0;
        foreach (var at in new[] { 4, 9 })
        {
            (await KillAtStep(EctProcess.TrainArgs(killed, [config]), at)).Should().BeTrue($"the kill at step {at} landed");
            var now = EctProcess.SqliteCheckpoints(killed)().DefaultIfEmpty(0).Max();
            output.WriteLine($"killed at step {at}; last committed checkpoint: step {now}");
            now.Should().BeGreaterThan(committed, $"the kill at step {at} came after a new checkpoint, so the restart resumes from it");
            committed = now;
        }
        RunJournal.Events<RunFinished>(RunJournal.Read(killed)).Should().BeEmpty("every kill landed before the end");
        var (code, text) = await EctProcess.RunToEnd(output, EctProcess.TrainArgs(killed, [config]), timeout: TimeSpan.FromMinutes(5));
        code.Should().Be(0);
        text.Should().Contain($"resumed from checkpoints/ckpt-{committed:D9}.ckpt at step {committed}", "the last start resumed from the last committed checkpoint");
        var got = Finished(killed);
        got.WeightsSha256.Should().Be(expected.WeightsSha256);
        got.EmaSha256.Should().Be(expected.EmaSha256);
        PhemaTensorDigests(LastCheckpoint(killed)).Should().Equal(PhemaTensorDigests(LastCheckpoint(reference)));
        var snapshots = Directory.GetFiles(Path.Combine(reference, "phema")).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        snapshots.Should().HaveCount(10);
        Directory.GetFiles(Path.Combine(killed, "phema")).Select(Path.GetFileName).Order(StringComparer.Ordinal).Should().Equal(snapshots);
        foreach (var s in snapshots)
            Sha(Path.Combine(killed, "phema", s!)).Should().Be(Sha(Path.Combine(reference, "phema", s!)), s);
        CheckpointStepsOnce(killed);
    }

    /// <summary>
    /// Import of an EDM2 checkpoint by name (the recipe's --transfer): the golden edm2-small weights (the official
    /// Precond's state_dict, keys unet.*) plus NVlabs' log-variance head, which ECT's network lacks and drops.
    /// </summary>
    [Fact]
    public void An_edm2_state_dict_loads_by_name_and_its_log_variance_head_is_dropped()
    {
        var golden = Safetensors.Read(Path.Combine(RepoRoot.Find(), "tests", "golden", "edm2-small", "weights.safetensors"));
        var dir = NewRunDir();
        var withHead = new Dictionary<string, TorchSharp.torch.Tensor>(golden.Tensors)
        {
            ["logvar_fourier.freqs"] = TorchSharp.torch.randn(128), ["logvar_fourier.phases"] = TorchSharp.torch.rand(128),
            ["logvar_linear.weight"] = TorchSharp.torch.randn(1, 128, 1, 1),
        };
        var file = Path.Combine(dir, "nvlabs-edm2.safetensors");
        Safetensors.Write(file, withHead);
        var config = new Ect.Compute.Networks.Edm2.Edm2UNetConfig
        {
            ImgResolution = 16, ImgChannels = 3, LabelDim = 10, ModelChannels = 32, ChannelMult = [1, 2], NumBlocks = 1,
            AttnResolutions = [8], Dropout = 0.1, DropoutRes = 8,
        };
        using (var net = new Ect.Compute.Preconditioning.Edm2Precond(config))
        {
            var (sha, dropped) = Edm2TrainingEngine.LoadInitial(file, net);
            dropped.Should().Be(3);
            sha.Should().Be(Sha(file).ToLowerInvariant());
            foreach (var (k, v) in net.state_dict())
                (v.shape.SequenceEqual(golden.Tensors[k].shape) && v.eq(golden.Tensors[k]).all().item<bool>()).Should().BeTrue($"{k} is the file's tensor");
        }
        var missing = new Dictionary<string, TorchSharp.torch.Tensor>(golden.Tensors);
        missing.Remove("unet.out_gain");
        var file2 = Path.Combine(dir, "missing.safetensors");
        Safetensors.Write(file2, missing);
        using (var net = new Ect.Compute.Preconditioning.Edm2Precond(config))
        {
            var act = () => Edm2TrainingEngine.LoadInitial(file2, net);
            act.Should().Throw<InvalidDataException>().WithMessage($"*{file2}*unet.out_gain*")
                .Which.Message.Should().NotContain("from scratch", "EDM2 weights with a tensor missing are not the wrong kind of file");
        }
        // The default ect.network.init (the shipped DDPM++ teacher) under network.type = edm2: the fix is named.
        var teacher = Path.Combine(RepoRoot.Find(), "teachers", "fashion-mnist-ddpmpp16.safetensors");
        using (var net = new Ect.Compute.Preconditioning.Edm2Precond(config))
        {
            var act = () => Edm2TrainingEngine.LoadInitial(teacher, net);
            act.Should().Throw<InvalidDataException>().WithMessage($"*{teacher}*no EDM2 weights*ect.network.init = \"\"*from scratch*");
        }
    }

    [Fact]
    public void Sample_grids_show_a_class_per_row()
    {
        static long[] Classes(Ect.Actors.Evaluation.ClassLabels c, int count, int labelDim) =>
            Enumerable.Range(0, count).Select(i => c.Of(i, labelDim)).ToArray();
        var grid = Ect.Actors.Evaluation.ClassLabels.RowPerClass.ForGrid;
        Classes(grid(64), 64, 10).Should().Equal(Enumerable.Range(0, 64).Select(i => (long)(i / 8)), "8 rows of 8: row r is class r");
        Classes(grid(4), 4, 10).Should().Equal(0, 0, 1, 1);
        Classes(grid(64), 64, 3).Distinct().Should().Equal(0, 1, 2);
        // fd-resnet18 and `ect eval`: image i is class i mod L, so an FD set of 100 holds each of 10 classes 10 times.
        Classes(Ect.Actors.Evaluation.ClassLabels.Default, 100, 10).GroupBy(c => c).Should().HaveCount(10).And.OnlyContain(g => g.Count() == 10);
    }

    [Fact]
    public void Ema_reconstruct_refuses_a_bad_std_and_a_run_without_snapshots()
    {
        var dir = NewRunDir();
        var (code, _, err) = CliHarness.Run("ema", "reconstruct", dir, "--std", "0.5", "--out", Path.Combine(dir, "w.safetensors"));
        code.Should().Be(2);
        err.Should().Contain("0.5").And.Contain("(0, 0.28)");
        (code, _, err) = CliHarness.Run("ema", "reconstruct", dir, "--std", "0.05", "--out", Path.Combine(dir, "w.safetensors"));
        code.Should().Be(1);
        err.Should().Contain(dir).And.Contain("phema-*.safetensors");
        File.Exists(Path.Combine(dir, "w.safetensors")).Should().BeFalse();
    }

    [Fact]
    public async Task A_conditional_edm2_network_on_a_data_set_without_labels_is_refused_naming_both()
    {
        var dir = NewRunDir();
        var idx = Path.Combine(dir, "images-idx3-ubyte");
        Eval.TinyCheckpointFixture.WriteIdx(idx, 8);
        var s = RunSettings.From(EctConfiguration.Load(null, TinyEdm2.Concat([$"data.path=\"{idx}\""])));
        var run = Path.Combine(dir, "run");
        var outcome = await RunDaemonAsync(run, s, Engines.Torch);
        outcome.ExitCode.Should().NotBe(0);
        outcome.Message.Should().Contain("ect.data.use-labels").And.Contain(idx).And.Contain("no labels");
    }
}
