using Ect.Actors.Persistence;
using Ect.Actors.Persistence.Events;
using Ect.Compute.IO;
using Ect.Compute.Networks;
using Ect.Compute.Preconditioning;
using FluentAssertions;
using TorchSharp;
using Xunit;

namespace Ect.Actors.Tests.RunTests;

/// <summary>
/// `ect train` on a finished run: a larger ect.tuning.steps lengthens it (journaled as RunExtended, later stages
/// reached, the final bits those of a run configured that long from the start, stoppable and resumable on the way);
/// --steps beyond its end and other requests that cannot lengthen it answer exit 2 with the command that does.
/// </summary>
[Collection("Console")]
public sealed class RunExtensionTests
{
    private static readonly string[] Fake =
    [
        "--set", "run.engine=fake", "--set", "pretrain.steps=10", "--set", "checkpoint.every-steps=5",
        "--set", "tuning.kimg-per-tick=0.1", "--set", "tuning.double-ticks=1", "--set", "display.mode=off",
        "--set", "control.enabled=off", "--set", "fake.parameters=1024", "--set", "data.batch-size=32",
    ];

    private static (int Code, string Out, string Err) Train(string runDir, params string[] more) =>
        CliHarness.Run(["train", "--run-dir", runDir, .. Fake, .. more]);

    private static string NewRunDir() => Directory.CreateTempSubdirectory("ect-extend-").FullName;

    [Fact]
    public void A_finished_run_is_lengthened_by_a_larger_tuning_steps_and_ends_with_the_bits_of_a_run_that_long_from_the_start()
    {
        var straight = NewRunDir();
        Train(straight, "--set", "tuning.steps=30").Code.Should().Be(0);
        var reference = RunJournal.Events<RunFinished>(RunJournal.Read(straight)).Should().ContainSingle().Subject;
        reference.Step.Should().Be(40);

        var dir = NewRunDir();
        var first = Train(dir, "--set", "tuning.steps=10");
        first.Code.Should().Be(0, first.Err);
        RunJournal.Events<RunFinished>(RunJournal.Read(dir)).Should().ContainSingle().Which.Step.Should().Be(20);

        // Lengthened to 40 steps, capped at 30 on the way (stopped, then continued: resumable).
        var capped = Train(dir, "--set", "tuning.steps=30", "--steps", "30");
        capped.Code.Should().Be(0, capped.Err);
        capped.Out.Should().Contain("Run stopped at step 30");
        var journal = RunJournal.Read(dir);
        var extended = RunJournal.Events<RunExtended>(journal).Should().ContainSingle().Subject;
        (extended.Step, extended.PreviousTotalSteps, extended.TotalSteps).Should().Be((20L, 20L, 40L));
        RunJournal.Events<ConfigChanged>(journal).Should().Contain(c => c.Key == "ect.tuning.steps" && c.Value == "30" && c.Step == 20
            && c.IdempotencyKey.StartsWith("extend-"));

        // Continued with the original command line only: the journaled length holds.
        var rest = Train(dir, "--set", "tuning.steps=10");
        rest.Code.Should().Be(0, rest.Err);
        journal = RunJournal.Read(dir);
        var finishes = RunJournal.Events<RunFinished>(journal).ToList();
        finishes.Select(f => f.Step).Should().Equal(20, 40);
        finishes[^1].WeightsSha256.Should().Be(reference.WeightsSha256, "the extension computes the steps a 40-step run computes");
        finishes[^1].EmaSha256.Should().Be(reference.EmaSha256);
        RunJournal.Events<StageAdvanced>(journal).Max(s => s.Stage).Should()
            .Be(RunJournal.Events<StageAdvanced>(RunJournal.Read(straight)).Max(s => s.Stage), "the later stages are reached as in the long run");
        RunJournal.Events<StageAdvanced>(journal).Where(s => s.Step > 20).Should().NotBeEmpty("the extension reached later stages");

        // Nothing more asked: exit 0, and the command that would lengthen it.
        var again = Train(dir);
        again.Code.Should().Be(0, again.Err);
        again.Out.Should().Contain("has already finished (step 40").And.Contain($"--run-dir {dir} --set ect.tuning.steps=");
    }

    [Fact]
    public void Requests_that_cannot_lengthen_a_finished_run_answer_exit_2_with_the_command_that_does()
    {
        var dir = NewRunDir();
        Train(dir, "--set", "tuning.steps=10").Code.Should().Be(0);
        var events = RunJournal.Read(dir).Count;

        var steps = Train(dir, "--steps", "60");
        steps.Code.Should().Be(2);
        steps.Err.Should().Contain("finished at step 20").And.Contain("caps a run")
            .And.Contain($"`ect train --run-dir {dir} --set ect.tuning.steps=50`", "pretraining takes 10 of the 60 steps");

        var shorter = Train(dir, "--set", "tuning.steps=5");
        shorter.Code.Should().Be(2);
        shorter.Err.Should().Contain("does not lengthen it");

        var pretrain = Train(dir, "--set", "pretrain.steps=20", "--set", "tuning.steps=30");
        pretrain.Code.Should().Be(2);
        pretrain.Err.Should().Contain("ect.pretrain.steps cannot change once tuning has begun");

        RunJournal.Read(dir).Count.Should().Be(events, "a refused request journals nothing");
    }

    [Fact]
    public void A_continued_run_checks_its_init_weights_against_its_recorded_configuration_not_the_command_line()
    {
        var dir = NewRunDir();
        var data = Path.Combine(dir, "..", Path.GetFileName(dir) + "-train-images-idx3-ubyte");
        Eval.TinyCheckpointFixture.WriteIdx(data, 16);
        var init = Path.Combine(dir, "..", Path.GetFileName(dir) + "-teacher.safetensors");
        torch.set_num_threads(1);
        using (var net = new EdmPrecond(SongUNetConfig.DdpmPP(32, 1, 0, 4, [1, 2], 1, [], 0.1)))
            Safetensors.Write(init, net.state_dict());
        string[] common = ["train", "--set", "run.engine=torch", "--set", "run.threads=1", "--set", $"data.path={data}",
            "--set", "data.batch-size=4", "--set", "display.mode=off", "--set", "control.enabled=off", "--set", "evaluation.evaluators=[]",
            "--set", $"network.init={init}", "--set", "tuning.steps=4", "--set", "checkpoint.every-steps=2"];
        string[] network = ["--set", "network.model-channels=4", "--set", "network.channel-mult=[1,2]", "--set", "network.num-blocks=1"];

        var first = CliHarness.Run([.. common, "--run-dir", dir, .. network, "--steps", "2"]);
        first.Code.Should().Be(0, first.Err);

        // The network keys left out: the command line alone would describe another network (16 channels, 3 levels).
        var fresh = CliHarness.Run([.. common, "--run-dir", Path.Combine(dir, "..", Path.GetFileName(dir) + "-fresh")]);
        fresh.Code.Should().Be(2, "for a new run the command line is the configuration");
        fresh.Err.Should().Contain("ect.network.model-channels = 4");

        var continued = CliHarness.Run([.. common, "--run-dir", dir]);
        continued.Code.Should().Be(0, continued.Err);
        continued.Out.Should().Contain("Run finished at step 4");
    }

    /// <summary>The same on the real engine (a tiny network tuned from random weights): 3 steps lengthened to 6 end with the bits of 6 steps.</summary>
    [Fact]
    [Trait("Category", "Slow")]
    public void A_lengthened_torch_run_ends_with_the_bits_of_a_run_that_long_from_the_start()
    {
        var root = NewRunDir();
        var data = Path.Combine(root, "train-images-idx3-ubyte");
        Eval.TinyCheckpointFixture.WriteIdx(data, 16);
        string[] Torch(string dir, int tuning) => ["train", "--run-dir", dir, "--set", "run.engine=torch", "--set", "run.threads=1",
            "--set", $"data.path={data}", "--set", "data.batch-size=4", "--set", "display.mode=off", "--set", "control.enabled=off",
            "--set", "evaluation.evaluators=[]", "--set", "network.init=\"\"", "--set", "network.model-channels=8",
            "--set", "network.channel-mult=[1,2]", "--set", "network.num-blocks=1", "--set", "checkpoint.every-steps=2",
            "--set", "tuning.kimg-per-tick=0.004", "--set", "tuning.double-ticks=1", "--set", $"tuning.steps={tuning}"];

        var straight = Path.Combine(root, "straight");
        var s = CliHarness.Run(Torch(straight, 6));
        s.Code.Should().Be(0, s.Err);
        var reference = RunJournal.Events<RunFinished>(RunJournal.Read(straight)).Should().ContainSingle().Subject;

        var dir = Path.Combine(root, "extended");
        CliHarness.Run(Torch(dir, 3)).Code.Should().Be(0);
        var e = CliHarness.Run(Torch(dir, 6));
        e.Code.Should().Be(0, e.Err);
        var journal = RunJournal.Read(dir);
        RunJournal.Events<RunExtended>(journal).Should().ContainSingle().Which.TotalSteps.Should().Be(6);
        RunJournal.Events<StageAdvanced>(journal).Should().Contain(st => st.Step > 3, "the extension reached a later stage (a stage per step here)");
        var last = RunJournal.Events<RunFinished>(journal).Last();
        last.Step.Should().Be(6);
        last.WeightsSha256.Should().Be(reference.WeightsSha256);
        last.EmaSha256.Should().Be(reference.EmaSha256);
    }
}
