using System.Diagnostics;
using Ect.Actors.Persistence;
using Ect.Actors.Persistence.Events;
using FluentAssertions;
using Xunit;
using Xunit.Abstractions;

namespace Ect.Actors.Tests.RunTests;

/// <summary>
/// The headline guarantee, on the real `ect` process: a run killed with SIGKILL at random instants (during
/// steps, checkpoint writes, evaluations) and restarted each time ends with the bits of an uninterrupted run,
/// and the journal shows every committed checkpoint once. The fake engine makes steps, checkpoint writes
/// and evaluations slow enough that random kills land inside each of them.
/// </summary>
public class KillResumeTests(ITestOutputHelper output)
{
    /// <summary>The fake run killed here (and on PostgreSQL by PostgresRunTests): steps, writes and evaluations slow enough that a random kill lands inside one of them.</summary>
    internal const string Config = """
        ect {
          run.engine = fake
          pretrain.steps = 60
          tuning.steps = 60
          checkpoint.every-steps = 15
          evaluation.every-steps = 40
          tuning.kimg-per-tick = 0.1
          fake { step-ms = 12, write-ms = 150, eval-ms = 250, parameters = 4096 }
          display { mode = plain, log-interval-seconds = 0.1 }
        }
        """;

    private static Process Start(string configFile, string runDir) => EctProcess.Start(EctProcess.TrainArgs(runDir, [configFile]));

    /// <summary>
    /// Several kills need a longer run: each restart makes progress until its kill (at most ~0.9 s, ~45 steps of
    /// 20 ms), so five of them stay inside 240 steps and none meets a finished run.
    /// </summary>
    private static readonly string LongConfig = Config.Replace("tuning.steps = 60", "tuning.steps = 180").Replace("step-ms = 12", "step-ms = 20");

    private Task<(int Code, string Out)> RunToEnd(string configFile, string runDir) =>
        EctProcess.RunToEnd(output, EctProcess.TrainArgs(runDir, [configFile]));

    /// <summary>
    /// Starts the run, waits until it trains (a progress line), then a random time (at most 0.8 s: inside the 1.4 s of
    /// steps of <see cref="Config"/>), then SIGKILL. True only when the kill landed (exit 137, no RunFinished).
    /// </summary>
    private Task<bool> KillDuringTraining(string configFile, string runDir, Random rng) =>
        EctProcess.KillDuringTraining(output, EctProcess.TrainArgs(runDir, [configFile]), rng, journal: EctProcess.SqliteCheckpoints(runDir),
            maxDelayMs: 800);

    /// <summary>Default suite: one kill; the reference run is in-process (same engine, same bits).</summary>
    [Fact]
    public Task Killed_once_and_restarted_the_run_ends_with_the_bits_of_an_uninterrupted_run() => KillAndCompare(1, 11, processReference: false, Config);

    [Fact]
    [Trait("Category", "Slow")]
    public Task Killed_five_times_at_random_instants_the_run_ends_with_the_bits_of_an_uninterrupted_process_run() => KillAndCompare(5, 12, processReference: true, LongConfig);

    private async Task KillAndCompare(int kills, int seed, bool processReference, string configText)
    {
        var dir = Directory.CreateTempSubdirectory("ect-kill-").FullName;
        var config = Path.Combine(dir, "tiny.conf");
        File.WriteAllText(config, configText);

        var reference = Path.Combine(dir, "reference");
        if (processReference) (await RunToEnd(config, reference)).Code.Should().Be(0);
        else
        {
            var s = Ect.Actors.Configuration.RunSettings.From(
                Ect.Actors.Configuration.EctConfiguration.Load(config, ["control.enabled=off", "display.mode=off", "fake.step-ms=0", "fake.write-ms=0", "fake.eval-ms=0"]), checkData: false);
            (await DaemonHarness.RunDaemonAsync(reference, s)).ExitCode.Should().Be(0);
        }
        var expected = DaemonHarness.Finished(reference);

        var killed = Path.Combine(dir, "killed");
        var rng = new Random(seed);
        var lockFile = Path.Combine(killed, Ect.Actors.Daemon.RunLock.FileName);
        for (int i = 0; i < kills; i++)
        {
            (await KillDuringTraining(config, killed, rng)).Should().BeTrue($"kill {i + 1} of {kills} landed before the run ended");
            File.Exists(lockFile).Should().BeTrue("a SIGKILLed daemon cannot delete its lock file");
        }
        RunJournal.Events<RunFinished>(RunJournal.Read(killed)).Should().BeEmpty("every kill landed before the end");
        // The stale (unlocked) file does not block the restart; the clean exit deletes it.
        var (code, text) = await RunToEnd(config, killed);
        code.Should().Be(0, text);
        File.Exists(lockFile).Should().BeFalse("a clean exit deletes run.lock");

        var got = DaemonHarness.Finished(killed);
        got.WeightsSha256.Should().Be(expected.WeightsSha256, "weights are bit-identical");
        got.EmaSha256.Should().Be(expected.EmaSha256, "EMA weights are bit-identical");
        DaemonHarness.CheckpointStepsOnce(killed).Should().BeSubsetOf(Enumerable.Range(1, 16).Select(i => 15L * i));
        Directory.GetFiles(Path.Combine(killed, "checkpoints"), "*.tmp").Should().BeEmpty();
    }

    private const string TorchConfig = """
        ect {
          run { engine = torch, threads = 1 }
          data { batch-size = 4, max-images = 64 }
          network { model-channels = 4, channel-mult = [1, 2], num-blocks = 1, init = "" }
          pretrain.steps = 6
          tuning.steps = 6
          checkpoint.every-steps = 2
          tuning { kimg-per-tick = 0.004, double-ticks = 1 }
          evaluation { every-steps = 4, evaluators = [ { type = sample-grid, sampling-steps = [1, 2], count = 4 } ] }
          display { mode = plain, log-interval-seconds = 0.1 }
        }
        """;

    /// <summary>The real path (TorchSharp SongUNet on Fashion-MNIST): killed twice, it ends with the bits of an uninterrupted process run.</summary>
    [Fact]
    [Trait("Category", "Slow")]
    public async Task A_killed_real_run_ends_with_the_bits_of_an_uninterrupted_one()
    {
        var dir = Directory.CreateTempSubdirectory("ect-kill-torch-").FullName;
        var config = Path.Combine(dir, "torch.conf");
        File.WriteAllText(config, TorchConfig);
        var reference = Path.Combine(dir, "reference");
        (await RunToEnd(config, reference)).Code.Should().Be(0);
        var expected = DaemonHarness.Finished(reference);
        var killed = Path.Combine(dir, "killed");
        var rng = new Random(5);
        for (int i = 0; i < 2; i++) (await KillDuringTraining(config, killed, rng)).Should().BeTrue($"kill {i + 1} landed");
        (await RunToEnd(config, killed)).Code.Should().Be(0);
        var got = DaemonHarness.Finished(killed);
        got.WeightsSha256.Should().Be(expected.WeightsSha256);
        got.EmaSha256.Should().Be(expected.EmaSha256);
        DaemonHarness.CheckpointStepsOnce(killed);
    }

    /// <summary>
    /// SIGTERM and Ctrl-C (SIGINT) reach the run (TrainVerb's handlers), not a host lifetime that would stop
    /// the actor system first: the run checkpoints, journals RunInterrupted, exits 0 and deletes run.lock.
    /// </summary>
    [Theory]
    [InlineData("TERM")]
    [InlineData("INT")]
    public async Task Sigterm_checkpoints_records_and_exits_zero(string signal)
    {
        var dir = Directory.CreateTempSubdirectory("ect-term-").FullName;
        var config = Path.Combine(dir, "tiny.conf");
        // Long enough that the signal always lands mid-run: under load (three test projects in parallel) the
        // 120-step run of Config could finish before the first progress line reached us, and then exit 0 as finished.
        File.WriteAllText(config, Config.Replace("tuning.steps = 60", "tuning.steps = 6000"));
        var run = Path.Combine(dir, "run");
        using var p = Start(config, run);
        var firstLine = new TaskCompletionSource();
        p.OutputDataReceived += (_, e) => { if (e.Data?.Contains(" step ") == true) firstLine.TrySetResult(); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        await firstLine.Task.WaitAsync(TimeSpan.FromSeconds(60));
        await Task.Delay(200);
        Process.Start("kill", [$"-{signal}", p.Id.ToString()])!.WaitForExit();
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        p.ExitCode.Should().Be(0);
        var journal = RunJournal.Read(run);
        var interrupted = RunJournal.Events<RunInterrupted>(journal).Should().ContainSingle().Subject;
        interrupted.Reason.Should().Contain("signal");
        RunJournal.Events<CheckpointCommitted>(journal).Select(c => c.Step).Should().Contain(interrupted.Step, "the stop wrote a final checkpoint");
        RunJournal.Events<RunFinished>(journal).Should().BeEmpty();
        File.Exists(Path.Combine(run, Ect.Actors.Daemon.RunLock.FileName)).Should().BeFalse("a clean exit deletes run.lock");
    }
}
