using Ect.Compute.Losses;
using Ect.Compute.Tests.Training;
using FluentAssertions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ect.Compute.Tests.Losses;

[Collection(Ect.Compute.Tests.Training.GlobalTorchStateCollection.Name)]
public class EctLossTests
{
    private static (Tensor y, Tensor n, Tensor eps) Batch(long seed, int batch = 4)
    {
        using var g = new Generator((ulong)seed);
        return (rand(new long[] { batch, 1, 8, 8 }, generator: g).Times(2).Minus(1),
                randn(new long[] { batch }, generator: g),
                randn(new long[] { batch, 1, 8, 8 }, generator: g));
    }

    [Fact]
    public void Matches_a_direct_restatement_of_the_formula()
    {
        torch.set_num_threads(1);
        using var net = new TinyPrecond();
        net.train();
        var (y, _, eps) = Batch(3);
        // t = exp(2n - 1.1) = 0.006, 0.12, 1.22, 6.05: the first two give r = 0 (target y), the others r > 0.
        var n = tensor(new[] { -2f, -0.5f, 0.5f, 1.5f });
        var loss = new EctLoss(new MappingFunction(MappingKind.Sigmoid, q: 2, stage: 1));
        using var got = loss.Compute(net, y, null, n, eps);

        // Restated independently: per sample, r = 0 -> target y.
        var t = n.Times(2.0).Minus(1.1).exp();
        var r = (t * ScalarMath.Minus(1, sigmoid(-t).Times(8).Plus(1).Times(0.25))).clamp_min(ScalarConstants.Zero);
        var expected = new float[4];
        using (no_grad())
        {
            for (int i = 0; i < 4; i++)
            {
                var yi = y[i].unsqueeze(0); var ei = eps[i].unsqueeze(0);
                var ti = t[i].reshape(1); var ri = r[i].reshape(1);
                var ft = net.call(yi.Plus(ti.reshape(1, 1, 1, 1) * ei), ti, null);
                var fr = ri.item<float>() > 0 ? net.call(yi.Plus(ri.reshape(1, 1, 1, 1) * ei), ri, null) : yi;
                expected[i] = (ft - fr).Squared().sum().sqrt().item<float>() / (ti - ri).item<float>();
            }
        }
        got.shape.Should().Equal(4);
        got.requires_grad.Should().BeTrue();
        var g = got.data<float>().ToArray();
        for (int i = 0; i < 4; i++) g[i].Should().BeApproximately(expected[i], 1e-4f * Math.Abs(expected[i]) + 1e-6f);
        r.data<float>().ToArray().Should().Contain(v => v == 0, "the test batch should exercise the r == 0 branch")
            .And.Contain(v => v > 0);
    }

    [Fact]
    public void Target_pass_reuses_the_dropout_mask()
    {
        // r == t in float32 (q huge): with the same dropout mask f_r == f_t exactly, so the loss is exactly 0;
        // with independent masks (p = 0.5) it would be far from 0.
        torch.set_num_threads(1);
        using var net = new TinyPrecond(dropout: 0.5, hidden: 16);
        net.train();
        var (y, _, _) = Batch(5);
        var loss = new EctLoss(new MappingFunction(MappingKind.Const, q: 1e12), weighting: EctWeighting.SnrPlusK);
        torch.random.manual_seed(42);
        using var l = loss.Compute(net, y, null);
        l.data<float>().ToArray().Should().OnlyContain(v => v == 0f);

        // Control: a fresh mask for the target does change the result.
        torch.random.manual_seed(42);
        using var t = torch.ones(4).Times(1.5f);
        using var x = y.Plus(t.reshape(4, 1, 1, 1) * randn_like(y));
        using var a = net.call(x, t, null);
        using var b = net.call(x, t, null);
        (a - b).abs().max().item<float>().Should().BeGreaterThan(1e-3f);
    }

    [Fact]
    public void Replaying_the_first_pass_dropout_masks_gives_the_bits_of_restoring_the_rng_and_drawing_them_again()
    {
        // SongUNet with dropout 0.5 (its dropout goes through SharedDropout): the loss, every gradient and the generator
        // afterwards are the same bits whether f_r replays f_t's recorded masks or draws them again from the restored
        // state (the reference's way). LastReplayedMasks shows which path ran.
        torch.set_num_threads(1);
        var cfg = Ect.Compute.Networks.SongUNetConfig.DdpmPP(8, 1, 0, 8, [1, 2], 1, [4], 0.5);
        var (y, _, _) = Batch(13);
        (float[] loss, float[][] grads, float after, int replayed, int blocks) Run(bool replay)
        {
            torch.random.manual_seed(3);
            using var net = new Ect.Compute.Preconditioning.EctPrecond(cfg);
            net.train();
            var ect = new EctLoss(new MappingFunction(MappingKind.Sigmoid, q: 2, stage: 1)) { ReplayDropoutMasks = replay };
            torch.random.manual_seed(17);
            using var l = ect.Compute(net, y, null);
            using var sum = l.sum();
            sum.backward();
            var grads = net.parameters().Select(p => p.grad is null ? Array.Empty<float>() : p.grad.data<float>().ToArray()).ToArray();
            using var next = randn(1);
            return (l.data<float>().ToArray(), grads, next.item<float>(), ect.LastReplayedMasks, net.modules().Count(m => m is Ect.Compute.Networks.UNetBlock));
        }
        var replayed = Run(replay: true);
        var redrawn = Run(replay: false);
        replayed.blocks.Should().BeGreaterThan(1);
        replayed.replayed.Should().Be(replayed.blocks, "one mask per UNetBlock (each has a dropout layer) was replayed");
        redrawn.replayed.Should().Be(0);
        replayed.loss.Should().Equal(redrawn.loss);
        replayed.loss.Should().Contain(v => v > 0, "a loss of zeros would compare nothing");
        replayed.grads.Length.Should().Be(redrawn.grads.Length);
        for (int i = 0; i < replayed.grads.Length; i++) replayed.grads[i].Should().Equal(redrawn.grads[i], $"gradient {i}");
        replayed.after.Should().Be(redrawn.after, "the generator ends where the reference leaves it");
    }

    [Fact]
    public void A_replayed_pass_refuses_a_mask_of_another_shape_or_a_mask_left_over()
    {
        using var x = ones(2, 3);
        using (var rec = Ect.Compute.Networks.SharedDropout.Record())
        {
            using var a = Ect.Compute.Networks.SharedDropout.Apply(x, 0.5, training: true);
            rec.Count.Should().Be(1);
            rec.Replay();
            using var other = ones(3, 2);
            var wrong = () => Ect.Compute.Networks.SharedDropout.Apply(other, 0.5, training: true);
            wrong.Should().Throw<InvalidOperationException>().WithMessage("*shape [2,3]*[3,2]*");
            ((Action)rec.CheckAllReplayed).Should().Throw<InvalidOperationException>().WithMessage("*used 0 of the 1*");
            using var b = Ect.Compute.Networks.SharedDropout.Apply(x, 0.5, training: true);
            b.data<float>().ToArray().Should().Equal(a.data<float>().ToArray(), "the replay multiplies by the recorded mask");
            var extra = () => Ect.Compute.Networks.SharedDropout.Apply(x, 0.5, training: true);
            extra.Should().Throw<InvalidOperationException>().WithMessage("*mask 2*drew 1*");
        }
        // No recorder left on the thread: plain F.dropout again (and a new recorder may start).
        using var c = Ect.Compute.Networks.SharedDropout.Record();
        c.Count.Should().Be(0);
    }

    [Fact]
    public void Random_overload_draws_n_then_eps_from_the_global_rng()
    {
        torch.set_num_threads(1);
        using var net = new TinyPrecond();
        net.train();
        var (y, _, _) = Batch(7);
        var loss = new EctLoss(new MappingFunction(stage: 2), c: 0.03);
        torch.random.manual_seed(11);
        using var a = loss.Compute(net, y, null);
        torch.random.manual_seed(11);
        using var n = randn(4, 1, 1, 1);
        using var eps = randn_like(y);
        using var b = loss.Compute(net, y, null, n, eps);
        a.data<float>().ToArray().Should().Equal(b.data<float>().ToArray());
    }

    [Fact]
    public void Pseudo_huber_and_snr_weighting()
    {
        torch.set_num_threads(1);
        using var net = new TinyPrecond();
        net.train();
        var (y, n, eps) = Batch(9);
        var plain = new EctLoss(new MappingFunction(MappingKind.Const, q: 4), weighting: EctWeighting.SnrPlusK);
        var huber = new EctLoss(new MappingFunction(MappingKind.Const, q: 4), c: 0.5, weighting: EctWeighting.SnrPlusK);
        using var lp = plain.Compute(net, y, null, n, eps);
        using var lh = huber.Compute(net, y, null, n, eps);
        var t = n.Times(2.0).Minus(1.1).exp();
        var w = t.Squared().Plus(0.25) / t.Times(0.5).Squared();
        var d = (lp / w).Squared();                       // recover the squared distance
        var expectedHuber = d.Plus(0.25).sqrt().Minus(0.5) * w;
        var e = expectedHuber.data<float>().ToArray(); var h = lh.data<float>().ToArray();
        for (int i = 0; i < 4; i++) h[i].Should().BeApproximately(e[i], 1e-4f * Math.Abs(e[i]) + 1e-5f);
    }

    [Fact]
    public void Stage_is_forwarded_to_the_mapping()
    {
        var loss = new EctLoss();
        ((IStagedLoss)loss).Stage = 3;
        loss.Mapping.Stage.Should().Be(3);
    }
}
