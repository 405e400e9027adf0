using Ect.Compute.IO;
using Ect.Compute.Losses;
using Ect.Compute.Optim;
using Ect.Compute.Preconditioning;
using Ect.Compute.Tests.Networks.Edm2;
using FluentAssertions;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Ect.Compute.Tests.Training;

/// <summary>
/// Ten iterations of the imgnet branch's training-loop body on the EDM2 network (golden edm2-small train.json): ECT loss
/// at stage 1 with the stored draws and dropout noise, mean backward, the inverse-sqrt lr (ref_lr 1e-3, decay 3
/// batches), gradient cleaning (nan/inf -> 0), Adam (0.9, 0.99, eps 1e-8), then the power-function EMAs (stds 0.01,
/// 0.05, 0.1) and the fixed-beta EMAs (0.9999, 0.9). Snapshots compared as the README says: tensors by
/// max|diff| / sum(lr) (Adam moves an element by ~lr per step), fingerprints and gains per column.
/// </summary>
[Collection("TorchThreads")]
public class Edm2TrainingParityTests(ITestOutputHelper output)
{
    [Fact]
    public void ScheduleAndEmaProfilesMatchReference()
    {
        var train = GoldenEdm2Small.Meta()["train"]!;
        double D(string k) => train[k]!.GetValue<double>();
        int batch = train["batch"]!.GetValue<int>();
        var schedule = new InverseSqrtLearningRate(D("ref_lr"), train["decay"]!.GetValue<long>());
        var lr = train["lr"]!.AsArray().Select(v => v!.GetValue<double>()).ToArray();
        for (int k = 1; k <= lr.Length; k++)
            schedule.At((k - 1L) * batch, batch).Should().BeApproximately(lr[k - 1], 1e-15, $"lr of step {k}");
        new InverseSqrtLearningRate(1e-3, 0).At(1_000_000, 128).Should().Be(1e-3, "decay 0 = constant lr (the -s-fast preset)");

        var stds = train["phema_stds"]!.AsArray().Select(v => v!.GetValue<double>()).ToArray();
        var exps = train["phema_exp"]!.AsArray().Select(v => v!.GetValue<double>()).ToArray();
        for (int i = 0; i < stds.Length; i++)
        {
            PowerFunctionEma.StdToExp(stds[i]).Should().BeApproximately(exps[i], 1e-10 * exps[i], $"std_to_exp({stds[i]})");
            PowerFunctionEma.ExpToStd(exps[i]).Should().BeApproximately(stds[i], 1e-12, "exp_to_std inverts std_to_exp");
        }
        var betas = train["phema_beta"]!.AsArray().Select(row => row!.AsArray().Select(v => v!.GetValue<double>()).ToArray()).ToArray();
        for (int k = 1; k <= betas.Length; k++)
            for (int i = 0; i < stds.Length; i++)
                PowerFunctionEma.Beta(exps[i], (long)k * batch, batch).Should().BeApproximately(betas[k - 1][i], 1e-12 + 1e-10 * betas[k - 1][i], $"beta of std {stds[i]} at step {k}");
        var tooWide = () => PowerFunctionEma.StdToExp(0.3);
        tooWide.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*0.3*");
    }

    [Fact]
    public void ImgnetGradientCleaningSetsNonFiniteEntriesToZero()
    {
        using var scope = NewDisposeScope();
        var p = new TorchSharp.Modules.Parameter(zeros(4));
        p.grad = tensor(new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity, 2.5f });
        GradientCleaner.Clean([p], GradientCleaner.ImgnetPosInf, GradientCleaner.ImgnetNegInf).Should().Be(3);
        p.grad!.data<float>().ToArray().Should().Equal(0f, 0f, 0f, 2.5f);
    }

    // ~30 s at 1 thread on the 2-core machine (2-3 min at 2 threads while other builds run): Slow.
    [Theory]
    [Trait("Category", "Slow")]
    [InlineData(1)]
    [InlineData(2)]
    public void TenTrainingStepsMatchReference(int threads)
    {
        torch.set_num_threads(threads);
        using var scope = NewDisposeScope();
        var meta = GoldenEdm2Small.Meta();
        var train = meta["train"]!;
        var m = meta["loss"]!;
        var g = new RawTensorFolder(Path.Combine(GoldenEdm2Small.Dir, "train.json"));
        int steps = train["steps"]!.GetValue<int>(), batch = train["batch"]!.GetValue<int>(), stage = train["stage"]!.GetValue<int>();
        var betas = train["betas"]!.AsArray().Select(v => v!.GetValue<double>()).ToArray();
        var stds = train["phema_stds"]!.AsArray().Select(v => v!.GetValue<double>()).ToArray();
        var emaBetas = train["ema_betas"]!.AsArray().Select(v => v!.GetValue<double>()).ToArray();
        var snaps = train["snap_steps"]!.AsArray().Select(v => v!.GetValue<int>()).ToHashSet();
        var probes = train["probe_names"]!.AsArray().Select(v => v!.GetValue<string>()).ToArray();
        var gainNames = meta["gain_names"]!.AsArray().Select(v => v!.GetValue<string>()).ToArray();

        using var net = GoldenEdm2Small.LoadNet();
        net.train();
        // The EMAs start as copies of W0, made before any forward (so before forced WN touches the weights).
        var phema = new PowerFunctionEma(net, stds, stds.Select(_ => (nn.Module)new Edm2Precond(GoldenEdm2Small.Config())).ToList());
        var online = emaBetas.Select(_ => new Edm2Precond(GoldenEdm2Small.Config())).ToList();
        foreach (var e in online) Ema.CopyWeights(net, e);

        var loss = new EctLoss(new MappingFunction(MappingKind.Sigmoid, q: m["q"]!.GetValue<double>(), k: m["k"]!.GetValue<double>(), b: m["b"]!.GetValue<double>(), stage: stage),
            pMean: m["P_mean"]!.GetValue<double>(), pStd: m["P_std"]!.GetValue<double>(), sigmaData: m["sigma_data"]!.GetValue<double>(),
            c: m["c"]!.GetValue<double>(), weighting: EctWeighting.SnrPlusK);
        var schedule = new InverseSqrtLearningRate(train["ref_lr"]!.GetValue<double>(), train["decay"]!.GetValue<long>());
        using var adam = OptimizerFactory.Create(new OptimizerConfig(OptimizerKind.Adam, train["ref_lr"]!.GetValue<double>(), betas[0], betas[1],
            train["eps"]!.GetValue<double>()), net.parameters());

        var images = g.Read("images");
        var labels = g.Read("labels");
        var rnd = g.Read("rnd_normal");
        var eps = g.Read("eps");
        var refLoss = g.Read("loss");
        var netFingerprints = g.Read("net_fingerprints");
        long curNimg = 0;
        double sumLr = 0, worstProbe = 0;
        for (int k = 1; k <= steps; k++)
        {
            using var stepScope = NewDisposeScope();
            string s = $"step{k:00}";
            adam.ZeroGrad();
            net.DropoutNoiseOverride = GoldenEdm2Small.InjectedDropout(g, $"{s}/dropout/");
            var l = loss.Compute(net, images[k - 1], labels[k - 1], rnd[k - 1], eps[k - 1]);
            GoldenEdm2Small.ShouldMatch(l, refLoss[k - 1], $"loss of step {k}", atolScale: 0, rtol: 1e-3);
            if (k == 1)
                GoldenEdm2Small.FingerprintsShouldMatch(net, g.Read("step01/net_after_forward/fingerprints"), "net after step 1's loss call", rtol: 1e-5);
            l.mean().backward();
            double lr = schedule.At(curNimg, batch);
            GradientCleaner.Clean(net.parameters(), GradientCleaner.ImgnetPosInf, GradientCleaner.ImgnetNegInf);
            OptimizerFactory.SetLearningRate(adam, lr);
            adam.Step();
            curNimg += batch;
            phema.Update(curNimg, batch);
            for (int i = 0; i < online.Count; i++) Ema.Update(net, online[i], emaBetas[i]);
            sumLr += lr;

            using (var fp = netFingerprints[k - 1])
                GoldenEdm2Small.FingerprintsShouldMatch(net, fp, $"net after step {k}", rtol: 1e-4, atol: 1e-4);
            if (!snaps.Contains(k)) continue;
            var models = new List<(string Name, nn.Module Module)> { ("net", net) };
            for (int i = 0; i < stds.Length; i++) models.Add(($"phema-{stds[i]:0.000}", phema.Emas[i]));
            for (int i = 0; i < emaBetas.Length; i++) models.Add(($"online_ema-{emaBetas[i]}", online[i]));
            foreach (var (name, module) in models)
            {
                var ps = module.named_parameters().ToDictionary(p => p.name, p => p.parameter);
                foreach (var probe in probes)
                {
                    var reference = g.Read($"{s}/{name}/{probe}");
                    double maxDiff = (ps[probe].detach() - reference).abs().max().item<float>();
                    worstProbe = Math.Max(worstProbe, maxDiff / sumLr);
                    maxDiff.Should().BeLessThanOrEqualTo(1e-2 * sumLr, $"{s}/{name}/{probe}: max|diff| / sum(lr) must be <= 1e-2");
                }
                var gains = stack(gainNames.Select(n => ps[n].detach()).ToArray());
                double gainDiff = (gains - g.Read($"{s}/{name}/gains")).abs().max().item<float>();
                gainDiff.Should().BeLessThanOrEqualTo(1e-2 * sumLr, $"{s}/{name}/gains");
                GoldenEdm2Small.FingerprintsShouldMatch(module, g.Read($"{s}/{name}/fingerprints"), $"{s}/{name}", rtol: 1e-4, atol: 1e-4);
            }
        }
        output.WriteLine($"{threads} thread(s): worst snapshot probe max|diff| / sum(lr) = {worstProbe:E2}");
        foreach (var e in phema.Emas) e.Dispose();
        foreach (var e in online) e.Dispose();
    }
}
