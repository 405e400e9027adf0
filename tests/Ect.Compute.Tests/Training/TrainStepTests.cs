using Ect.Compute.Losses;
using Ect.Compute.Optim;
using Ect.Compute.Preconditioning;
using Ect.Compute.Training;
using FluentAssertions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ect.Compute.Tests.Training;

[Collection(GlobalTorchStateCollection.Name)]
public class TrainStepTests
{
    internal static TrainStepConfig Config(long seed = 7, int batch = 8, int rounds = 1, OptimizerKind kind = OptimizerKind.RAdam)
        => new(batch, new OptimizerConfig(kind, 1e-3), new EmaConfig(Beta: 0.9), rounds, seed);

    internal static Tensor Images(int step, int batch = 8)
    {
        using var scope = NewDisposeScope();
        using var g = new Generator((ulong)(1000 + step));
        return rand(new long[] { batch, 1, 8, 8 }, generator: g).Times(2).Minus(1).MoveToOuterDisposeScope();
    }

    internal static TrainStep NewStep(TrainStepConfig cfg, ITrainingLoss? loss = null)
        => new(new TinyPrecond(dropout: 0.2), new TinyPrecond(dropout: 0.2, seed: 99), loss ?? new EctLoss(new MappingFunction(stage: 1)), cfg);

    private static (string Net, string Ema) Run(TrainStepConfig cfg, int steps, ITrainingLoss? loss = null)
    {
        using var step = NewStep(cfg, loss);
        for (int i = 0; i < steps; i++) { using var x = Images(i, cfg.BatchSize); step.Step(x); }
        return (StateDigest.Compute(step.Net), StateDigest.Compute(step.EmaNet));
    }

    [Fact]
    public void Same_seed_and_config_give_bit_identical_weights()
    {
        torch.set_num_threads(1);
        var a = Run(Config(), 3);
        // Disturb the global RNG in between: the step's own stream must not care.
        torch.random.manual_seed(12345); using (var _ = randn(100)) { }
        var b = Run(Config(), 3);
        var c = Run(Config(seed: 8), 3);
        b.Should().Be(a);
        c.Net.Should().NotBe(a.Net, "another seed draws other noise levels and dropout masks");
    }

    [Fact]
    public void Edm_loss_and_adam_with_accumulation_are_deterministic_too()
    {
        torch.set_num_threads(1);
        var cfg = Config(rounds: 2, kind: OptimizerKind.Adam);
        Run(cfg, 2, new EdmLoss()).Should().Be(Run(cfg, 2, new EdmLoss()));
    }

    [Fact]
    public void Step_updates_weights_ema_counters_and_statistics()
    {
        torch.set_num_threads(1);
        using var step = NewStep(Config());
        StateDigest.Compute(step.EmaNet).Should().Be(StateDigest.Compute(step.Net), "the EMA starts as a deep copy");
        step.EmaNet.training.Should().BeFalse();
        var before = StateDigest.Compute(step.Net);
        using var netBefore = step.Net.parameters().First().detach().clone();
        using var emaBefore = step.EmaNet.parameters().First().detach().clone();

        using var x = Images(0);
        var s = step.Step(x);
        s.Step.Should().Be(1);
        s.ImagesSeen.Should().Be(8);
        s.RedoCount.Should().Be(0);
        s.LossMean.Should().BeGreaterThan(0);
        s.LossStd.Should().BeGreaterThan(0);
        s.GradNorm.Should().BeGreaterThan(0);
        s.EmaBeta.Should().Be(0.9);
        s.Duration.Should().BePositive();
        StateDigest.Compute(step.Net).Should().NotBe(before);

        // ema = p_new.lerp(ema_old, 0.9) = 0.9 ema_old + 0.1 p_new
        using var pNew = step.Net.parameters().First().detach();
        using var expected = pNew.Plus((emaBefore - pNew).Times(0.9));
        ((step.EmaNet.parameters().First() - expected).abs().max().item<float>()).Should().BeLessThan(1e-6f);
        step.Net.parameters().First().requires_grad.Should().BeTrue();
        step.EmaNet.parameters().First().requires_grad.Should().BeFalse();
    }

    [Fact]
    public void Set_stage_and_learning_rate_reach_the_loss_and_optimizer()
    {
        var loss = new EctLoss();
        using var step = NewStep(Config(), loss);
        step.SetStage(3);
        loss.Stage.Should().Be(3);
        step.SetLearningRate(2e-4);
        step.Optimizer.LearningRate.Should().Be(2e-4);
        step.LearningRate.Should().Be(2e-4);
    }

    /// <summary>Returns NaN losses on its first <c>bad</c> calls, then delegates.</summary>
    private sealed class FlakyLoss(int bad) : ITrainingLoss
    {
        private readonly EctLoss _inner = new(new MappingFunction(stage: 1));
        public int Calls;
        public Tensor Compute(Precond net, Tensor images, Tensor? classLabels)
        {
            var l = _inner.Compute(net, images, classLabels);
            return Calls++ < bad ? l.Times(double.NaN) : l;
        }
    }

    [Fact]
    public void Non_finite_loss_is_recomputed_from_the_same_rng_state()
    {
        torch.set_num_threads(1);
        using var clean = NewStep(Config());
        using var x = Images(0);
        var sClean = clean.Step(x);

        var flaky = new FlakyLoss(1);
        using var retried = NewStep(Config(), flaky);
        var sRetried = retried.Step(x);
        sRetried.RedoCount.Should().Be(1);
        flaky.Calls.Should().Be(2);
        sRetried.LossMean.Should().Be(sClean.LossMean, "the redo draws the same noise and dropout mask");
        StateDigest.Compute(retried.Net).Should().Be(StateDigest.Compute(clean.Net));

        // Bounded: a loss that never recovers stops after MaxRedo retries and goes on with sanitised gradients.
        var hopeless = new FlakyLoss(int.MaxValue);
        using var stuck = NewStep(Config() with { MaxRedo = 2 }, hopeless);
        var sStuck = stuck.Step(x);
        sStuck.RedoCount.Should().Be(2);
        hopeless.Calls.Should().Be(3);
        sStuck.NonFiniteGradients.Should().BeGreaterThan(0);
        stuck.Net.parameters().Should().OnlyContain(p => p.isfinite().all().item<bool>());
    }

    [Fact]
    public void Rejects_a_batch_of_the_wrong_size()
    {
        torch.set_num_threads(1);
        using var step = NewStep(Config());
        using var x = Images(0, 4);
        FluentActions.Invoking(() => step.Step(x)).Should().Throw<ArgumentException>().WithMessage("*8 images*");
        // The record itself holds any value; the step refuses it when built, naming the setting and the batch size.
        var uneven = Config(rounds: 3);
        (uneven.BatchSize, uneven.AccumulationRounds).Should().Be((8, 3));
        FluentActions.Invoking(() => NewStep(uneven)).Should().Throw<ArgumentOutOfRangeException>()
            .Where(e => e.ParamName == nameof(TrainStepConfig.AccumulationRounds) && Equals(e.ActualValue, 3))
            .WithMessage("*must divide the batch size 8*");
        using var even = NewStep(Config(rounds: 2));
        using var x8 = Images(0);
        even.Step(x8).ImagesSeen.Should().Be(8, "2 rounds of 4 images make one step of 8");
    }
}
