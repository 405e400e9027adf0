using Ect.Actors.Configuration;
using Ect.Actors.Engine;
using Ect.Actors.Persistence;
using Ect.Actors.Persistence.Events;
using FluentAssertions;
using Xunit;
using static Ect.Actors.Tests.RunTests.DaemonHarness;

namespace Ect.Actors.Tests.RunTests;

/// <summary>The real path: TorchSharp SongUNet + Fashion-MNIST through the daemon, with a tiny network.</summary>
public class TorchEngineTests
{
    private static readonly string[] TinyTorch =
    [
        "run.engine=torch", "run.threads=1", "data.batch-size=4", "data.max-images=64",
        "network.model-channels=4", "network.channel-mult=[1,2]", "network.num-blocks=1", "network.dropout=0.1", "network.init=\"\"",
        "pretrain.steps=2", "tuning.steps=2", "checkpoint.every-steps=1", "evaluation.every-steps=0",
        "evaluation.evaluators=[{type=sample-grid,sampling-steps=[1,2],count=4}]",
        "tuning.kimg-per-tick=0.002", "tuning.double-ticks=1",
        "display.mode=off", "control.enabled=off",
    ];

    private static RunSettings Settings(params string[] sets)
    {
        const string data = "/usr/share/datasets/fashion-mnist";
        Directory.Exists(data).Should().BeTrue($"Fashion-MNIST is installed at {data} (apt-get install dataset-fashion-mnist)");
        return RunSettings.From(EctConfiguration.Load(null, TinyTorch.Concat(sets)));
    }

    [Fact]
    [Trait("Category", "Slow")]
    public async Task A_stopped_and_continued_real_run_ends_with_the_bits_of_an_uninterrupted_one()
    {
        var a = NewRunDir();
        (await RunDaemonAsync(a, Settings(), Engines.Torch)).ExitCode.Should().Be(0);
        var reference = Finished(a);
        reference.Step.Should().Be(4);
        Directory.GetFiles(Path.Combine(a, "samples"), "grid-*.png").Should().HaveCount(2);
        var journal = RunJournal.Read(a);
        RunJournal.Events<PhaseChanged>(journal).Select(p => p.Phase).Should().Contain("tuning");
        RunJournal.Events<StageAdvanced>(journal).Should().NotBeEmpty("the stage advances every 0.002 kimg = 2 steps of 4... at least once");

        // Stopped after the pretrain -> tuning switch point and once within tuning, then continued.
        var b = NewRunDir();
        (await RunDaemonAsync(b, Settings("run.max-steps=2"), Engines.Torch)).Step.Should().Be(2);
        (await RunDaemonAsync(b, Settings("run.max-steps=3"), Engines.Torch)).Step.Should().Be(3);
        (await RunDaemonAsync(b, Settings(), Engines.Torch)).ExitCode.Should().Be(0);
        var got = Finished(b);
        got.WeightsSha256.Should().Be(reference.WeightsSha256);
        got.EmaSha256.Should().Be(reference.EmaSha256);
        CheckpointStepsOnce(b).Should().Equal(1, 2, 3, 4);
    }
}
