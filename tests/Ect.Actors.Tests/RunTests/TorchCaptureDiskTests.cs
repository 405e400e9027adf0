using Ect.Actors.Checkpoints;
using Ect.Actors.Configuration;
using Ect.Actors.Engine;
using Ect.Actors.Persistence;
using Ect.Actors.Persistence.Events;
using Ect.Actors.Run;
using System.Runtime.CompilerServices;
using FluentAssertions;
using Xunit;
using Xunit.Abstractions;
using static Ect.Actors.Tests.RunTests.DaemonHarness;

namespace Ect.Actors.Tests.RunTests;

/// <summary>
/// Issue 12, point 3, for the real engine: TorchSharp's capture writes the whole train state to a scratch file in
/// checkpoints/ on the trainer thread, before the checkpointer's own (retried) write. On a full disk it is retried as
/// the checkpointer's write is, and after the last try the run ends with exit 1 naming the folder and the errno; a
/// run whose disk frees up within the tries goes on and ends with the bits of an undisturbed run. The checkpoints
/// folder is a real 2 MiB tmpfs filled to ENOSPC (the journal stays on the ordinary disk).
/// </summary>
public class TorchCaptureDiskTests(ITestOutputHelper output)
{
    private static readonly string[] TinyTorch =
    [
        "run.engine=torch", "run.threads=1", "data.batch-size=4", "data.max-images=64",
        "network.model-channels=4", "network.channel-mult=[1,2]", "network.num-blocks=1", "network.dropout=0.1", "network.init=\"\"",
        "pretrain.steps=2", "tuning.steps=2", "checkpoint.every-steps=1", "evaluation.every-steps=0", "evaluation.evaluators=[]",
        "tuning.kimg-per-tick=0.002", "tuning.double-ticks=1", "display.mode=off", "control.enabled=off",
    ];

    private static RunSettings Settings(params string[] sets)
    {
        const string data = "/usr/share/datasets/fashion-mnist";
        Directory.Exists(data).Should().BeTrue($"Fashion-MNIST is installed at {data} (apt-get install dataset-fashion-mnist)");
        return RunSettings.From(EctConfiguration.Load(null, TinyTorch.Concat(sets)));
    }

    private static (string Dir, SmallDisk Disk) RunDirWithSmallCheckpointDisk()
    {
        var dir = NewRunDir();
        var checkpoints = Directory.CreateDirectory(Path.Combine(dir, Checkpointer.Folder)).FullName;
        return (dir, new SmallDisk(2, checkpoints));
    }

    /// <summary>The torch engine, with the checkpoint disk filled once the engine exists (before its first step; the
    /// start-up write check of the run directory passes on the empty disk).</summary>
    private static EngineFactory FillingOnStart(SmallDisk disk, StrongBox<string?> filler) => (settings, runDir) =>
    {
        var made = Engines.Torch(settings, runDir);
        lock (filler) filler.Value ??= disk.Fill();
        return made;
    };

    [SmallDiskFact]
    public async Task A_full_checkpoint_disk_ends_the_torch_run_with_exit_1_naming_errno_and_a_restart_resumes_exactly()
    {
        var reference = NewRunDir();
        (await RunDaemonAsync(reference, Settings(), Engines.Torch)).ExitCode.Should().Be(0);
        var expected = Finished(reference);

        var (dir, disk) = RunDirWithSmallCheckpointDisk();
        using (disk)
        {
            var filler = new StrongBox<string?>();
            var outcome = await RunDaemonAsync(dir, Settings("checkpoint.write-attempts=2", "checkpoint.write-retry-delay-ms=100"), FillingOnStart(disk, filler));
            output.WriteLine(outcome.Message);
            outcome.ExitCode.Should().Be(1, "a clean stop with an error");
            outcome.Message.Should().Contain("could not be captured").And.Contain("errno 28, ENOSPC").And.Contain("2 attempt(s)");
            RunJournal.Events<CheckpointCommitted>(RunJournal.Read(dir)).Should().BeEmpty();
            Directory.GetFiles(dir, "*.tmp", SearchOption.AllDirectories).Should().BeEmpty("a failed capture leaves no partial file");

            File.Delete(filler.Value!);
            (await RunDaemonAsync(dir, Settings(), Engines.Torch)).ExitCode.Should().Be(0);
            var got = Finished(dir);
            got.WeightsSha256.Should().Be(expected.WeightsSha256);
            got.EmaSha256.Should().Be(expected.EmaSha256);
        }
    }

    [SmallDiskFact]
    public async Task A_checkpoint_disk_that_frees_up_within_the_tries_lets_the_torch_run_go_on_to_the_undisturbed_bits()
    {
        var reference = NewRunDir();
        (await RunDaemonAsync(reference, Settings(), Engines.Torch)).ExitCode.Should().Be(0);
        var expected = Finished(reference);

        var (dir, disk) = RunDirWithSmallCheckpointDisk();
        using (disk)
        {
            var filler = new StrongBox<string?>();
            // The first capture attempt creates its temporary file in the full folder (and fails): free the space then,
            // well within the 3 s before the second attempt.
            var attempted = new TaskCompletionSource();
            using var watcher = new FileSystemWatcher(disk.Dir) { EnableRaisingEvents = true };
            watcher.Created += (_, e) => { if (e.Name?.EndsWith(".tmp") == true) attempted.TrySetResult(); };
            var freed = attempted.Task.ContinueWith(_ => { lock (filler) File.Delete(filler.Value!); });
            var outcome = await RunDaemonAsync(dir, Settings("checkpoint.write-attempts=3", "checkpoint.write-retry-delay-ms=3000"), FillingOnStart(disk, filler));
            output.WriteLine(outcome.Message);
            attempted.Task.IsCompleted.Should().BeTrue("a capture was attempted on the full disk");
            await freed;
            outcome.ExitCode.Should().Be(0);
            var got = Finished(dir);
            got.WeightsSha256.Should().Be(expected.WeightsSha256);
            got.EmaSha256.Should().Be(expected.EmaSha256);
            CheckpointStepsOnce(dir).Should().Equal(1, 2, 3, 4);
        }
    }
}
