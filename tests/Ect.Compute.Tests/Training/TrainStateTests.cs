using Ect.Compute.IO;
using Ect.Compute.Training;
using FluentAssertions;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Ect.Compute.Tests.Training;

[Collection(GlobalTorchStateCollection.Name)]
public class TrainStateTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ect-state-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void Save_then_load_continues_bit_identically_in_process()
    {
        torch.set_num_threads(1);
        var cfg = TrainStepTests.Config();
        string straightNet, straightEma;
        using (var straight = TrainStepTests.NewStep(cfg))
        {
            for (int i = 0; i < 5; i++) { using var x = TrainStepTests.Images(i); straight.Step(x); }
            straightNet = StateDigest.Compute(straight.Net); straightEma = StateDigest.Compute(straight.EmaNet);
        }

        var path = Path.Combine(_dir, "state.safetensors");
        using (var first = TrainStepTests.NewStep(cfg))
        {
            for (int i = 0; i < 2; i++) { using var x = TrainStepTests.Images(i); first.Step(x); }
            first.Stage.Should().Be(1, "the step takes the loss's initial stage");
            TrainState.Save(path, first, new Dictionary<string, string> { ["sampler"] = "{\"epoch\":3}" });
        }
        Directory.GetFiles(_dir).Should().Equal(path); // the temporary file is gone

        // Another seed and another initial stage: both are overridden by the saved state.
        using var second = new TrainStep(new TinyPrecond(dropout: 0.2), new TinyPrecond(dropout: 0.2, seed: 99),
            new Ect.Compute.Losses.EctLoss(new Ect.Compute.Losses.MappingFunction(stage: 4)), cfg with { Seed = 999 });
        var meta = TrainState.Load(path, second);
        meta.Should().Equal(new Dictionary<string, string> { ["sampler"] = "{\"epoch\":3}" });
        second.StepIndex.Should().Be(2);
        second.ImagesSeen.Should().Be(16);
        second.Stage.Should().Be(1);
        second.Optimizer.StepCount.Should().Be(2);
        for (int i = 2; i < 5; i++) { using var x = TrainStepTests.Images(i); second.Step(x); }
        StateDigest.Compute(second.Net).Should().Be(straightNet);
        StateDigest.Compute(second.EmaNet).Should().Be(straightEma);
    }

    [Fact]
    public void Load_names_the_file_when_it_is_not_a_training_state()
    {
        var path = Path.Combine(_dir, "weights.safetensors");
        Safetensors.Write(path, new Dictionary<string, Tensor> { ["w"] = ones(2) });
        using var step = TrainStepTests.NewStep(TrainStepTests.Config());
        FluentActions.Invoking(() => TrainState.Load(path, step)).Should().Throw<InvalidDataException>()
            .WithMessage($"*{path}*not an ECT training state*");
        FluentActions.Invoking(() => TrainState.Save(Path.Combine(_dir, "no", "such", "dir.st"), step))
            .Should().Throw<DirectoryNotFoundException>();
    }

    [Fact]
    public void Digest_depends_on_names_and_bytes()
    {
        using var a = ones(3);
        using var b = ones(3);
        using var c = tensor(new[] { 1f, 1f, 1.0000001f });
        StateDigest.Compute(new[] { ("x", a) }).Should().Be(StateDigest.Compute(new[] { ("x", b) }));
        StateDigest.Compute(new[] { ("x", a) }).Should().NotBe(StateDigest.Compute(new[] { ("y", a) }));
        StateDigest.Compute(new[] { ("x", a) }).Should().NotBe(StateDigest.Compute(new[] { ("x", c) }));
        StateDigest.Compute(new[] { ("x", a), ("y", c) }).Should().Be(StateDigest.Compute(new[] { ("y", c), ("x", a) }));
    }
}
