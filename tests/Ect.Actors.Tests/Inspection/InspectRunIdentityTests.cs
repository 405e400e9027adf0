using Ect.Actors.Configuration;
using Ect.Actors.Engine;
using Ect.Actors.Run;
using Ect.Actors.Tests.RunTests;
using FluentAssertions;
using Xunit;
using Ect.Actors.Checkpoints;

namespace Ect.Actors.Tests.Inspection;

/// <summary>`ect inspect` on a real (torch engine) run directory shows which run wrote the checkpoint.</summary>
[Collection("Console")]
public sealed class InspectRunIdentityTests
{
    [Fact]
    public async Task Inspect_shows_the_run_id_of_a_daemon_checkpoint_and_of_the_run_directory()
    {
        const string data = "/usr/share/datasets/fashion-mnist";
        Directory.Exists(data).Should().BeTrue($"Fashion-MNIST is installed at {data} (apt-get install dataset-fashion-mnist)");
        var s = RunSettings.From(EctConfiguration.Load(null,
        [
            "run.engine=torch", "run.threads=1", "data.batch-size=4", "data.max-images=16", "network.model-channels=4",
            "network.channel-mult=[1]", "network.num-blocks=1", "network.init=\"\"", "pretrain.steps=1", "tuning.steps=0",
            "checkpoint.every-steps=1", "evaluation.every-steps=0", "evaluation.evaluators=[]", "display.mode=off", "control.enabled=off",
        ]));
        var dir = DaemonHarness.NewRunDir();
        (await DaemonHarness.RunDaemonAsync(dir, s, Engines.Torch)).ExitCode.Should().Be(0);
        var id = RunIdentity.Read(dir)!;

        var (code, output, err) = CliHarness.Run("inspect", dir, "--metadata");
        code.Should().Be(0, err);
        output.Should().Contain($"{id.Name} ({id.Id})").And.Contain(id.PersistenceId).And.Contain("user.run-id");
        CheckpointMetadata.Read(CheckpointMetadata.FilesIn(dir)[^1])![RunIdentity.IdKey].Should().Be(id.Id, "safetensors checkpoints carry it as user.run-id");
    }
}
