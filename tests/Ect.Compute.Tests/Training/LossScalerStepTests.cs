using Ect.Compute.Optim;
using Ect.Compute.Training;
using FluentAssertions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ect.Compute.Tests.Training;

/// <summary>
/// ect.run.mixed-precision = fp16's dynamic loss scaler (<see cref="DynamicLossScaler"/>, GradScaler semantics) on the
/// float32 TrainStep: fp16 itself is refused on the CPU, so overflow is produced by an initial scale above float32's
/// range (2^128 is inf in float32: the scaled loss and every gradient become inf/NaN), which is what an fp16 overflow
/// looks like to the scaler.
/// </summary>
[Collection(GlobalTorchStateCollection.Name)]
public class LossScalerStepTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ect-scaler-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private static readonly double Overflowing = Math.Pow(2, 130);

    [Fact]
    public void Update_backs_off_on_a_skip_and_grows_after_the_interval_as_GradScaler_does()
    {
        var s = new DynamicLossScaler();
        s.Scale.Should().Be(65536); // GradScaler's init_scale 2^16
        for (int i = 0; i < 1999; i++) s.Update(skipped: false);
        s.Scale.Should().Be(65536);
        s.GrowthTracker.Should().Be(1999);
        s.Update(skipped: false);
        s.Scale.Should().Be(131072, "2000 finite steps in a row double the scale");
        s.GrowthTracker.Should().Be(0);
        s.Update(skipped: false);
        s.Update(skipped: true);
        s.Scale.Should().Be(65536, "a skipped step halves it");
        s.GrowthTracker.Should().Be(0, "and restarts the count");
        s.SkippedSteps.Should().Be(1);
    }

    [Fact]
    public void A_power_of_two_scale_that_does_not_overflow_gives_the_unscaled_steps_bits()
    {
        torch.set_num_threads(1);
        var cfg = TrainStepTests.Config();
        string plain;
        using (var step = TrainStepTests.NewStep(cfg))
        {
            for (int i = 0; i < 3; i++) { using var x = TrainStepTests.Images(i); step.Step(x); }
            plain = StateDigest.Compute(step.Net);
        }
        using var scaled = TrainStepTests.NewStep(cfg);
        scaled.LossScaler = new DynamicLossScaler(initScale: 1024, growthInterval: 2);
        var stats = new List<StepStatistics>();
        for (int i = 0; i < 3; i++) { using var x = TrainStepTests.Images(i); stats.Add(scaled.Step(x)); }
        stats.Should().OnlyContain(s => !s.SkippedByLossScaler);
        stats.Select(s => s.LossScale).Should().Equal(1024, 1024, 2048);
        scaled.LossScaler.Scale.Should().Be(2048, "grown once after 2 finite steps, the third one counted");
        StateDigest.Compute(scaled.Net).Should().Be(plain, "scaling by 2^k and unscaling is exact in float32 when nothing overflows");
    }

    [Fact]
    public void An_overflowing_step_is_skipped_weights_EMA_and_optimizer_untouched_and_the_scale_backs_off()
    {
        torch.set_num_threads(1);
        using var step = TrainStepTests.NewStep(TrainStepTests.Config());
        step.LossScaler = new DynamicLossScaler(initScale: Overflowing);
        string net = StateDigest.Compute(step.Net), ema = StateDigest.Compute(step.EmaNet);
        using var x = TrainStepTests.Images(0);
        var s = step.Step(x);
        s.SkippedByLossScaler.Should().BeTrue();
        s.NonFiniteGradients.Should().BeGreaterThan(0, "the gradients really overflowed");
        double.IsFinite(s.LossMean).Should().BeTrue("the reported loss is the unscaled one");
        s.RedoCount.Should().Be(0, "overflow is the scaler's to handle: no redo at the same scale");
        StateDigest.Compute(step.Net).Should().Be(net, "no optimizer step");
        StateDigest.Compute(step.EmaNet).Should().Be(ema, "no EMA update");
        step.Optimizer.StepCount.Should().Be(0);
        step.StepIndex.Should().Be(1, "the step is counted and its images consumed, as the official loop does");
        step.LossScaler.Scale.Should().Be(Overflowing / 2);
        step.LossScaler.SkippedSteps.Should().Be(1);
    }

    [Fact]
    public void The_scaler_state_is_saved_and_a_resumed_run_matches_the_uninterrupted_one_bit_for_bit()
    {
        torch.set_num_threads(1);
        var cfg = TrainStepTests.Config();
        // 2^129: the first two steps overflow (2^129, 2^128 are inf in float32) and are skipped; then training runs.
        DynamicLossScaler NewScaler() => new(initScale: Math.Pow(2, 129), growthInterval: 3);
        const int total = 7, cut = 3;
        string straightNet, straightEma, straightScaler;
        using (var straight = TrainStepTests.NewStep(cfg))
        {
            straight.LossScaler = NewScaler();
            var skipped = new List<bool>();
            for (int i = 0; i < total; i++) { using var x = TrainStepTests.Images(i); skipped.Add(straight.Step(x).SkippedByLossScaler); }
            skipped.Take(2).Should().Equal(true, true);
            skipped.Skip(2).Should().Contain(false, "training resumed once the scale fit");
            (straightNet, straightEma, straightScaler) = (StateDigest.Compute(straight.Net), StateDigest.Compute(straight.EmaNet), straight.LossScaler.Serialize());
        }

        var path = Path.Combine(_dir, "state.safetensors");
        string saved;
        using (var first = TrainStepTests.NewStep(cfg))
        {
            first.LossScaler = NewScaler();
            for (int i = 0; i < cut; i++) { using var x = TrainStepTests.Images(i); first.Step(x); }
            TrainState.Save(path, first);
            saved = first.LossScaler.Serialize();
            first.LossScaler.SkippedSteps.Should().BeGreaterThanOrEqualTo(2);
        }
        var contents = Ect.Compute.IO.Safetensors.Read(path);
        contents.Metadata.Should().Contain(TrainState.LossScalerKey, saved);
        foreach (var t in contents.Tensors.Values) t.Dispose();
        using var second = TrainStepTests.NewStep(cfg with { Seed = 999 });
        second.LossScaler = new DynamicLossScaler(growthInterval: 3); // default initial scale: the file's state replaces it
        TrainState.Load(path, second);
        second.LossScaler.Serialize().Should().Be(saved);
        for (int i = cut; i < total; i++) { using var x = TrainStepTests.Images(i); second.Step(x); }
        StateDigest.Compute(second.Net).Should().Be(straightNet);
        StateDigest.Compute(second.EmaNet).Should().Be(straightEma);
        second.LossScaler.Serialize().Should().Be(straightScaler);
    }

    [Theory]
    [InlineData("abc")]
    [InlineData("-1;0;0")]
    [InlineData("inf;0;0")]
    [InlineData("1024;5;0")]
    [InlineData("1024;0;-3")]
    [InlineData("1024;0")]
    public void A_damaged_scaler_state_is_refused_naming_the_file_and_the_value(string value)
    {
        var s = new DynamicLossScaler(growthInterval: 5);
        var act = () => s.Restore(value, "/runs/x/state.safetensors");
        act.Should().Throw<InvalidDataException>().WithMessage($"*'/runs/x/state.safetensors'*ect.loss-scaler*'{value}'*");
        s.Scale.Should().Be(DynamicLossScaler.DefaultInitScale, "nothing was applied");
    }
}
