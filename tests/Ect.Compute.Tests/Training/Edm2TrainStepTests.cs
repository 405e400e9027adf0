using Ect.Compute.IO;
using Ect.Compute.Losses;
using Ect.Compute.Networks.Edm2;
using Ect.Compute.Optim;
using Ect.Compute.Preconditioning;
using Ect.Compute.Tests.Networks.Edm2;
using Ect.Compute.Training;
using FluentAssertions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ect.Compute.Tests.Training;

/// <summary>
/// Edm2TrainStep, the daemon's form of the imgnet branch's loop body: against the golden edm2-small run (the same
/// draws and dropout noise injected), and exact resume through TrainState with its power-function EMAs.
/// </summary>
[Collection(GlobalTorchStateCollection.Name)]
public class Edm2TrainStepTests
{
    /// <summary>Hands EctLoss the golden draws of step k (rnd_normal, eps) and the net its stored dropout noise.</summary>
    private sealed class GoldenDrawsLoss(EctLoss loss, RawTensorFolder g, Tensor rnd, Tensor eps) : ITrainingLoss
    {
        public int Calls { get; private set; }

        public Tensor Compute(Precond net, Tensor images, Tensor? classLabels)
        {
            int k = ++Calls;
            ((Edm2Precond)net).DropoutNoiseOverride = GoldenEdm2Small.InjectedDropout(g, $"step{k:00}/dropout/");
            return loss.Compute(net, images, classLabels, rnd[k - 1], eps[k - 1]);
        }
    }

    [Fact]
    public void FiveStepsMatchTheReferenceRun()
    {
        torch.set_num_threads(1);
        using var scope = NewDisposeScope();
        var meta = GoldenEdm2Small.Meta();
        var train = meta["train"]!;
        var m = meta["loss"]!;
        var g = new RawTensorFolder(Path.Combine(GoldenEdm2Small.Dir, "train.json"));
        int batch = train["batch"]!.GetValue<int>(), stage = train["stage"]!.GetValue<int>();
        var betas = train["betas"]!.AsArray().Select(v => v!.GetValue<double>()).ToArray();
        var stds = train["phema_stds"]!.AsArray().Select(v => v!.GetValue<double>()).ToArray();
        var probes = train["probe_names"]!.AsArray().Select(v => v!.GetValue<string>()).ToArray();

        using var net = GoldenEdm2Small.LoadNet();
        using var ema = new Edm2Precond(GoldenEdm2Small.Config());
        var phema = stds.Select(_ => new Edm2Precond(GoldenEdm2Small.Config())).ToList();
        var ect = new EctLoss(new MappingFunction(MappingKind.Sigmoid, q: m["q"]!.GetValue<double>(), k: m["k"]!.GetValue<double>(), b: m["b"]!.GetValue<double>(), stage: stage),
            pMean: m["P_mean"]!.GetValue<double>(), pStd: m["P_std"]!.GetValue<double>(), sigmaData: m["sigma_data"]!.GetValue<double>(),
            c: m["c"]!.GetValue<double>(), weighting: EctWeighting.SnrPlusK);
        var loss = new GoldenDrawsLoss(ect, g, g.Read("rnd_normal"), g.Read("eps"));
        var config = new Edm2TrainStepConfig(batch,
            new OptimizerConfig(OptimizerKind.Adam, train["ref_lr"]!.GetValue<double>(), betas[0], betas[1], train["eps"]!.GetValue<double>()),
            train["decay"]!.GetValue<long>(), EmaBeta: 0.9999, stds);
        using var step = new Edm2TrainStep(net, ema, phema.Cast<Precond>().ToList(), loss, config);

        var images = g.Read("images");
        var labels = g.Read("labels");
        var refLoss = g.Read("loss");
        var netFingerprints = g.Read("net_fingerprints");
        var lrs = train["lr"]!.AsArray().Select(v => v!.GetValue<double>()).ToArray();
        double sumLr = 0;
        for (int k = 1; k <= 5; k++)
        {
            var s = step.Step(images[k - 1], labels[k - 1]);
            s.LossMean.Should().BeApproximately(refLoss[k - 1].to(float64).mean().item<double>(), 1e-3 * Math.Abs(s.LossMean), $"mean loss of step {k}");
            step.Optimizer.LearningRate.Should().BeApproximately(lrs[k - 1], 1e-15, $"the inverse-sqrt lr of step {k}");
            sumLr += lrs[k - 1];
            GoldenEdm2Small.FingerprintsShouldMatch(net, netFingerprints[k - 1], $"net after step {k}", rtol: 1e-4, atol: 1e-4);
        }
        step.ImagesSeen.Should().Be(5L * batch);

        var models = new List<(string Name, nn.Module Module)> { ("net", net), ("online_ema-0.9999", ema) };
        for (int i = 0; i < stds.Length; i++) models.Add(($"phema-{stds[i]:0.000}", phema[i]));
        foreach (var (name, module) in models)
        {
            var ps = module.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            foreach (var probe in probes)
            {
                double maxDiff = (ps[probe].detach() - g.Read($"step05/{name}/{probe}")).abs().max().item<float>();
                maxDiff.Should().BeLessThanOrEqualTo(1e-2 * sumLr, $"step05/{name}/{probe}: max|diff| / sum(lr) must be <= 1e-2");
            }
            GoldenEdm2Small.FingerprintsShouldMatch(module, g.Read($"step05/{name}/fingerprints"), $"step05/{name}", rtol: 1e-4, atol: 1e-4);
        }
        foreach (var p in phema) p.Dispose();
    }

    private static Edm2UNetConfig Tiny() => new()
    {
        ImgResolution = 8, ImgChannels = 3, LabelDim = 3, ModelChannels = 16, ChannelMult = [1, 2], NumBlocks = 1,
        AttnResolutions = [], Dropout = 0.1,
    };

    private sealed class Run : IDisposable
    {
        public readonly Edm2Precond Net, Ema;
        public readonly List<Edm2Precond> Phema;
        public readonly Edm2TrainStep Step;

        public Run()
        {
            torch.random.manual_seed(7);
            Net = new Edm2Precond(Tiny());
            Ema = new Edm2Precond(Tiny());
            Phema = [new Edm2Precond(Tiny()), new Edm2Precond(Tiny())];
            var loss = new EctLoss(new MappingFunction(MappingKind.Sigmoid, q: 4, k: 8, b: 1), -0.8, 1.6, c: 0.06, weighting: EctWeighting.SnrPlusK);
            Step = new Edm2TrainStep(Net, Ema, Phema.Cast<Precond>().ToList(), loss,
                new Edm2TrainStepConfig(4, new OptimizerConfig(OptimizerKind.Adam, 1e-3, 0.9, 0.99), LrDecayBatches: 1, EmaBeta: 0.9, PhemaStds: [0.05, 0.1], Seed: 3));
        }

        public string Digest() => string.Join(",", new[] { StateDigest.Compute(Net), StateDigest.Compute(Ema) }.Concat(Phema.Select(p => StateDigest.Compute(p))));

        public void Dispose() { Step.Dispose(); Net.Dispose(); Ema.Dispose(); foreach (var p in Phema) p.Dispose(); }
    }

    private static (Tensor Images, Tensor Labels) Batch(int k)
    {
        var gen = new Generator((ulong)(100 + k));
        var images = rand([4, 3, 8, 8], generator: gen).Times(2).Minus(1);
        var labels = nn.functional.one_hot(tensor(new long[] { k % 3, (k + 1) % 3, (k + 2) % 3, k % 3 }), 3).to(float32);
        return (images, labels);
    }

    [Fact]
    public void AStateSavedAfterTwoStepsContinuesToTheBitsOfThreeUninterruptedSteps()
    {
        torch.set_num_threads(1);
        using var scope = NewDisposeScope();
        string expected, afterTwo;
        using (var a = new Run())
        {
            for (int k = 0; k < 2; k++) { var (x, y) = Batch(k); a.Step.Step(x, y); }
            afterTwo = a.Digest();
            var (x2, y2) = Batch(2);
            a.Step.Step(x2, y2);
            expected = a.Digest();
            a.Step.Optimizer.LearningRate.Should().BeApproximately(1e-3 / Math.Sqrt(2), 1e-18, "lr of step 3 = ref_lr / sqrt(8 images / (1 batch x 4))");
        }
        afterTwo.Should().NotBe(expected, "the third step changes the weights");

        var file = Path.Combine(Directory.CreateTempSubdirectory("ect-edm2-state-").FullName, "s.safetensors");
        using (var b = new Run())
        {
            for (int k = 0; k < 2; k++) { var (x, y) = Batch(k); b.Step.Step(x, y); }
            TrainState.Save(file, b.Step);
        }
        var saved = Safetensors.Read(file);
        saved.Tensors.Keys.Should().Contain(["phema-0.050/unet.out_gain", "phema-0.100/unet.out_conv.weight", "ema/unet.out_gain", "net/unet.emb_label.weight"]);
        foreach (var t in saved.Tensors.Values) t.Dispose();

        using var c = new Run(); // fresh weights (the same seed, but the state file must overwrite everything)
        for (int k = 0; k < 1; k++) { var (x, y) = Batch(5); c.Step.Step(x, y); } // disturb: weights, moments, RNG, counters
        TrainState.Load(file, c.Step);
        c.Digest().Should().Be(afterTwo, "the loaded state is the saved one, power-function EMAs included");
        c.Step.ImagesSeen.Should().Be(8);
        var (x3, y3) = Batch(2);
        c.Step.Step(x3, y3);
        c.Digest().Should().Be(expected, "the resumed step gives the bits of the uninterrupted one");
    }

    [Fact]
    public void SetLearningRateSetsRefLrAndTheDecayStillApplies()
    {
        torch.set_num_threads(1);
        using var scope = NewDisposeScope();
        using var r = new Run();
        r.Step.SetLearningRate(2e-3);
        r.Step.LearningRate.Should().Be(2e-3);
        for (int k = 0; k < 3; k++) { var (x, y) = Batch(k); r.Step.Step(x, y); }
        r.Step.Optimizer.LearningRate.Should().BeApproximately(2e-3 / Math.Sqrt(2), 1e-18, "step 3 starts at 8 images = 2 decay batches of 4");
        var bad = () => r.Step.SetLearningRate(double.NaN);
        bad.Should().Throw<ArgumentOutOfRangeException>();
    }

    [Fact]
    public void One_rank_through_the_flat_buffer_gives_the_bits_of_a_plain_step()
    {
        torch.set_num_threads(1);
        using var scope = NewDisposeScope();
        string Digest(bool parallel)
        {
            using var r = new Run();
            var sum = new DataParallelStepTests.OneRank();
            if (parallel) r.Step.Parallel = new DataParallel(0, 1, sum);
            for (int k = 0; k < 3; k++) { var (x, y) = Batch(k); r.Step.Step(x, y); }
            if (parallel) sum.Calls.Should().Be(3, "one all-reduce per step");
            return r.Digest();
        }
        Digest(parallel: true).Should().Be(Digest(parallel: false), "mpirun -np 1 keeps a plain EDM2 run's bits");
    }

    [Fact]
    public void Two_ranks_on_their_shards_end_bit_identical_and_report_the_whole_batch_loss()
    {
        using var scope = NewDisposeScope();
        torch.set_num_threads(1);
        var sum = new DataParallelStepTests.ThreadRanks(2);
        // Both ranks start from the same weights (in a job: rank 0's state, broadcast); made one after the other.
        var runs = new[] { new Run(), new Run() };
        var digests = new string[2];
        var losses = new double[2][];
        var threads = Enumerable.Range(0, 2).Select(rank => new Thread(() =>
        {
            torch.set_num_threads(1);
            sum.Rank = rank;
            using var threadScope = NewDisposeScope();
            var step = runs[rank].Step;
            step.Parallel = new DataParallel(rank, 2, sum);
            losses[rank] = new double[3];
            for (int k = 0; k < 3; k++)
            {
                var (x, y) = Batch(k);
                losses[rank][k] = step.Step(x.narrow(0, rank * 2, 2), y.narrow(0, rank * 2, 2)).LossMean;
            }
            digests[rank] = runs[rank].Digest();
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        foreach (var r in runs) r.Dispose();
        digests[1].Should().Be(digests[0], "both ranks applied the same summed gradient (weights, EMA and power-function EMAs)");
        losses[1].Should().Equal(losses[0], "the reported loss is the whole batch's, on every rank");
        var wrong = () => { using var r = new Run(); r.Step.Parallel = new DataParallel(0, 2, sum); var (x, y) = Batch(0); r.Step.Step(x, y); };
        wrong.Should().Throw<ArgumentException>().WithMessage("*expected 2 images*4 over 2 ranks*");
    }
}
