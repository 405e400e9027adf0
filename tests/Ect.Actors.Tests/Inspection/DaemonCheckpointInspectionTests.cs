using System.Security.Cryptography;
using System.Text;
using Ect.Actors.Configuration;
using Ect.Actors.Engine;
using Ect.Actors.Persistence;
using Ect.Actors.Persistence.Events;
using Ect.Actors.Tests.RunTests;
using FluentAssertions;
using Xunit;
using Ect.Actors.Checkpoints;

namespace Ect.Actors.Tests.Inspection;

/// <summary>
/// `ect inspect` on checkpoints the daemon really wrote (TorchSharp engine, tiny network): the config digest is the
/// SHA-256 of the configuration journaled when the run started, the same in every checkpoint of the run.
/// </summary>
[Collection("Console")]
public class DaemonCheckpointInspectionTests
{
    [Fact]
    public async Task A_real_daemon_checkpoint_carries_the_runs_config_digest_and_inspect_shows_it()
    {
        const string data = "/usr/share/datasets/fashion-mnist";
        Directory.Exists(data).Should().BeTrue($"Fashion-MNIST is installed at {data} (apt-get install dataset-fashion-mnist)");
        var s = RunSettings.From(EctConfiguration.Load(null,
        [
            "run.engine=torch", "run.threads=1", "data.batch-size=4", "data.max-images=16", "data.resolution=8",
            "network.model-channels=4", "network.channel-mult=[1,2]", "network.num-blocks=1", "network.init=\"\"",
            "pretrain.steps=2", "tuning.steps=0", "checkpoint.every-steps=1", "evaluation.every-steps=0", "evaluation.evaluators=[]",
            "display.mode=off", "control.enabled=off",
        ]));
        var dir = DaemonHarness.NewRunDir();
        (await DaemonHarness.RunDaemonAsync(dir, s, Engines.Torch)).ExitCode.Should().Be(0);

        var started = RunJournal.Events<RunStarted>(RunJournal.Read(dir)).Should().ContainSingle().Subject;
        var expected = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(started.ConfigHocon)));
        var files = Directory.GetFiles(Path.Combine(dir, "checkpoints"), "*.ckpt").Order().ToList();
        files.Should().HaveCountGreaterThanOrEqualTo(2);
        foreach (var f in files) CheckpointSummary.Of(f).ConfigDigest.Should().Be(expected, f);

        var (code, output, err) = CliHarness.Run("inspect", dir);
        code.Should().Be(0, err);
        output.Should().Contain("config digest").And.Contain(expected);
    }
}
