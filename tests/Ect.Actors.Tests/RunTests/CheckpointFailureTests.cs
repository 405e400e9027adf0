using Ect.Actors.Checkpoints;
using Ect.Actors.Configuration;
using Ect.Actors.Control;
using Ect.Actors.Output;
using Ect.Actors.Persistence;
using Ect.Actors.Persistence.Events;
using Ect.Actors.Run;
using FluentAssertions;
using Xunit;
using Xunit.Abstractions;
using static Ect.Actors.Tests.RunTests.DaemonHarness;

namespace Ect.Actors.Tests.RunTests;

/// <summary>
/// Issue 12, point 3: a run that cannot write its checkpoints must stop (exit 1, the file and the errno named) after
/// a bounded number of tries, never go on without checkpoints nor wait for a commit that cannot come; no thread may
/// crash the process on a full disk; a failed start leaves nothing that blocks the next; SIGTERM ends `ect train`
/// within a bounded time. Real failures: a tmpfs filled to ENOSPC, an immutable (chattr +i) folder, a file where
/// the checkpoints folder should be.
/// </summary>
public class CheckpointFailureTests(ITestOutputHelper output)
{
    private static readonly string[] Retry = ["checkpoint.write-attempts=2", "checkpoint.write-retry-delay-ms=100"];

    private static async Task<RunOutcome> RunBounded(string dir, RunSettings s, TimeSpan limit, Action? onStarted = null)
    {
        var run = Ect.Actors.Daemon.RunDaemon.RunAsync(s, dir, Ect.Actors.Engine.Engines.Fake, CancellationToken.None, TextWriter.Null,
            onStarted: onStarted is null ? null : (_, _) => onStarted());
        (await Task.WhenAny(run, Task.Delay(limit))).Should().BeSameAs(run, $"the run must end within {limit.TotalSeconds} s, not wait for a commit");
        return await run;
    }

    [Fact]
    public async Task A_file_where_the_checkpoints_folder_should_be_ends_the_run_with_exit_1_naming_the_file_and_errno()
    {
        var dir = NewRunDir();
        File.WriteAllText(Path.Combine(dir, Checkpointer.Folder), "not a folder");
        var outcome = await RunBounded(dir, Settings(Retry), TimeSpan.FromSeconds(60));
        output.WriteLine(outcome.Message);
        outcome.ExitCode.Should().Be(1);
        outcome.Message.Should().Contain("ckpt-000000010.ckpt").And.Contain("errno 20, ENOTDIR").And.Contain("2 attempt(s)");
        var journal = RunJournal.Read(dir);
        RunJournal.Events<CheckpointCommitted>(journal).Should().BeEmpty();
        RunJournal.Events<RunInterrupted>(journal).Should().ContainSingle().Which.Reason.Should().Contain("ENOTDIR");
        // The run stopped at the failed checkpoint's step boundary (or a step later), not at the end of training.
        outcome.Step.Should().BeLessThan(30);
    }

    [SmallDiskFact]
    public async Task An_immutable_checkpoints_folder_ends_the_resumed_run_with_EPERM_and_the_next_start_resumes()
    {
        using var disk = new SmallDisk(64);
        var dir = Directory.CreateDirectory(Path.Combine(disk.Dir, "run")).FullName;
        (await RunBounded(dir, Settings("run.max-steps=10"), TimeSpan.FromSeconds(60))).Step.Should().Be(10);
        var ckpts = Path.Combine(dir, Checkpointer.Folder);
        // Immutable before the start: refused at once by the start-up check, naming the folder and the errno.
        SmallDisk.Immutable(ckpts, true);
        try
        {
            var refused = async () => await RunBounded(dir, Settings(Retry), TimeSpan.FromSeconds(60));
            (await refused.Should().ThrowAsync<Ect.Actors.Configuration.ConfigurationException>())
                .Which.Message.Should().Contain(ckpts).And.Contain("EPERM");
        }
        finally { SmallDisk.Immutable(ckpts, false); }
        // Immutable once the run has started (past the start-up check): the checkpoint write fails mid-run.
        RunOutcome failed;
        try
        {
            failed = await RunBounded(dir, Settings(Retry), TimeSpan.FromSeconds(60), onStarted: () => SmallDisk.Immutable(ckpts, true));
            Directory.GetFiles(ckpts).Select(Path.GetFileName).Should().BeEquivalentTo(["ckpt-000000010.ckpt"], "nothing could be added");
        }
        finally { SmallDisk.Immutable(ckpts, false); }
        output.WriteLine(failed.Message);
        failed.ExitCode.Should().Be(1);
        failed.Message.Should().Contain("ckpt-000000020.ckpt").And.Contain("EPERM");

        // The cause removed, the same run directory resumes from step 10 and finishes.
        var done = await RunBounded(dir, Settings(), TimeSpan.FromSeconds(120));
        done.ExitCode.Should().Be(0, done.Message);
        Finished(dir).Step.Should().Be(60);
    }

    [Fact]
    public void Each_stats_line_is_in_the_file_as_soon_as_it_is_written_so_a_kill_after_the_last_step_loses_none()
    {
        var dir = Directory.CreateTempSubdirectory("ect-stats-").FullName;
        try
        {
            var file = new StatsFile(dir, 0); // never disposed: the process "dies" here
            for (int i = 1; i <= 3; i++) file.Write(new TrainingProgress(i, i, 0.5, "tuning", 0, 1e-4, 100, 0.01, DateTimeOffset.UtcNow));
            using var read = new StreamReader(new FileStream(Path.Combine(dir, StatsFile.Name), FileMode.Open, FileAccess.Read, FileShare.ReadWrite));
            var lines = read.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries);
            lines.Should().HaveCount(3, "a line still in the writer's buffer would be lost with the process");
            lines[^1].Should().StartWith("{\"step\":3,");
        }
        finally { Directory.Delete(dir, true); }
    }

    [SmallDiskFact]
    public void The_stats_file_on_a_full_disk_reports_ENOSPC_and_never_throws()
    {
        using var disk = new SmallDisk(1);
        var reported = new List<string>();
        var file = new StatsFile(disk.Dir, 0) { OnFailure = reported.Add };
        disk.Fill();
        var act = () =>
        {
            for (int i = 1; i <= 20_000; i++) file.Write(new TrainingProgress(i, i, 0.5, "pretrain", 0, 1e-3, 100, 0.01, DateTimeOffset.UtcNow));
            file.Dispose();
        };
        act.Should().NotThrow();
        reported.Should().ContainSingle().Which.Should().Contain("ENOSPC");
        file.Failure.Should().Contain("No space left on device");
    }

    [SmallDiskFact]
    public void The_control_token_on_a_full_disk_is_refused_clearly_and_leaves_no_file_and_an_empty_one_is_replaced()
    {
        using var disk = new SmallDisk(1);
        var config = EctConfiguration.Load(null, []);
        disk.Fill();
        var act = () => ControlEndpoint.EnsureToken(config, disk.Dir);
        act.Should().Throw<ControlException>().Which.Message.Should().Contain("control.token").And.Contain("ENOSPC");
        Directory.GetFiles(disk.Dir).Select(Path.GetFileName).Should().BeEquivalentTo(["filler"], "no empty token, no temporary file");

        // An empty token left by an older version (the bug) no longer blocks a start: it is replaced.
        File.Delete(Path.Combine(disk.Dir, "filler"));
        File.WriteAllText(Path.Combine(disk.Dir, "control.token"), "");
        var token = ControlEndpoint.EnsureToken(config, disk.Dir);
        token.Should().MatchRegex("^[0-9a-f]{64}$");
        File.ReadAllText(Path.Combine(disk.Dir, "control.token")).Should().Be(token);
        ControlEndpoint.EnsureToken(config, disk.Dir).Should().Be(token, "a good token is kept");
    }

    private const string ProcessConfig = """
        ect {
          run.engine = fake
          pretrain.steps = 60
          tuning.steps = 60
          checkpoint { every-steps = 10, keep-last = 2, write-attempts = 2, write-retry-delay-ms = 200 }
          evaluation.every-steps = 0
          tuning.kimg-per-tick = 0.1
          data.batch-size = 32
          fake { step-ms = 20, parameters = 16384 }
          display { mode = plain, log-interval-seconds = 0.1 }
        }
        """;

    private string WriteConfig(string dir, string text = ProcessConfig)
    {
        var path = Path.Combine(dir, "test.conf");
        File.WriteAllText(path, text);
        return path;
    }

    [SmallDiskFact]
    [Trait("Category", "Slow")] // ~30 s: two `ect` processes, one to the end of the run
    public async Task A_disk_that_fills_mid_run_ends_ect_train_with_exit_1_not_an_abort_and_the_run_resumes_once_space_is_free()
    {
        using var disk = new SmallDisk(16);
        var dir = Path.Combine(disk.Dir, "run");
        var config = WriteConfig(Directory.CreateTempSubdirectory("ect-conf-").FullName);
        using var p = EctProcess.Start("train", "--config", config, "--run-dir", dir);
        var err = p.StandardError.ReadToEndAsync();
        var committed = new TaskCompletionSource();
        p.OutputDataReceived += (_, e) => { if (e.Data?.Contains(" step 2") == true) committed.TrySetResult(); };
        p.BeginOutputReadLine();
        await Task.WhenAny(committed.Task, p.WaitForExitAsync(), Task.Delay(60_000));
        p.HasExited.Should().BeFalse("the run trains before the disk fills");
        var filler = disk.Fill();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(90));
        var text = await err;
        output.WriteLine($"exit {p.ExitCode} after {clock.Elapsed.TotalSeconds:F1} s\n{text}");
        p.ExitCode.Should().Be(1, "a clean stop with an error, not SIGABRT (134) or SIGSEGV (139)");
        text.Should().ContainAny("ENOSPC", "disk is full");
        Directory.GetFiles(dir, "*.tmp", SearchOption.AllDirectories).Should().BeEmpty("no partial file is left");

        File.Delete(filler);
        var (code, _, err2, _) = await EctProcess.RunAsync(TimeSpan.FromSeconds(120), "train", "--config", config, "--run-dir", dir);
        code.Should().Be(0, err2);
        RunJournal.Events<RunFinished>(RunJournal.Read(dir)).Should().ContainSingle().Which.Step.Should().Be(120);
    }

    [SmallDiskTheory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_fresh_run_on_a_full_disk_fails_clearly_and_leaves_nothing_that_blocks_the_next_start(bool control)
    {
        using var disk = new SmallDisk(8);
        var dir = Directory.CreateDirectory(Path.Combine(disk.Dir, "run")).FullName;
        var config = WriteConfig(Directory.CreateTempSubdirectory("ect-conf-").FullName,
            ProcessConfig.Replace("run.engine = fake", $"run.engine = fake\n  control.enabled = {(control ? "on" : "off")}"));
        var filler = disk.Fill();
        var (code, o, e, took) = await EctProcess.RunAsync(TimeSpan.FromSeconds(90), "train", "--config", config, "--run-dir", dir);
        output.WriteLine($"exit {code} after {took.TotalSeconds:F1} s\n{o}\n{e}");
        code.Should().BeOneOf([1, 2], "an error exit, not a crash");
        (o + e).Should().ContainAny("ENOSPC", "disk is full");
        var token = Path.Combine(dir, "control.token");
        if (File.Exists(token)) File.ReadAllText(token).Should().MatchRegex("^[0-9a-f]{64}$", "never an empty token");
        Directory.GetFiles(dir, "*.tmp", SearchOption.AllDirectories).Should().BeEmpty();

        File.Delete(filler);
        var (code2, _, e2, _) = await EctProcess.RunAsync(TimeSpan.FromSeconds(120), "train", "--config", config, "--run-dir", dir, "--steps", "20");
        code2.Should().Be(0, e2);
        RunJournal.Events<CheckpointCommitted>(RunJournal.Read(dir)).Select(c => c.Step).Should().Contain(20);
    }

    [Fact]
    [Trait("Category", "Slow")] // ~25 s: the bounded stop waits out its timeout and the actor system's
    public async Task SIGTERM_ends_ect_train_within_the_stop_timeout_even_when_the_step_in_flight_never_returns()
    {
        var work = Directory.CreateTempSubdirectory("ect-term-").FullName;
        // One fake step takes 10 minutes: the clean stop (at the next step boundary) cannot come in time.
        var config = WriteConfig(work, ProcessConfig.Replace("step-ms = 20", "step-ms = 600000") + "\nect.run.stop-timeout-seconds = 2\n");
        using var p = EctProcess.Start("train", "--config", config, "--run-dir", Path.Combine(work, "run"));
        var o = p.StandardOutput.ReadToEndAsync();
        var e = p.StandardError.ReadToEndAsync();
        // Wait for the run to have started (the journal holds RunStarted), then SIGTERM.
        for (int i = 0; i < 300 && !File.Exists(Path.Combine(work, "run", "stats.jsonl")); i++) await Task.Delay(100);
        await Task.Delay(1000);
        p.HasExited.Should().BeFalse();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        SmallDisk.Sh("kill", "-TERM", p.Id.ToString()).Code.Should().Be(0);
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        output.WriteLine($"exit {p.ExitCode} {clock.Elapsed.TotalSeconds:F1} s after SIGTERM\n{await o}\n{await e}");
        p.ExitCode.Should().Be(1);
        (await e).Should().Contain("did not stop within 2 s");
        clock.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task A_second_SIGTERM_ends_ect_train_at_once()
    {
        var work = Directory.CreateTempSubdirectory("ect-term2-").FullName;
        var config = WriteConfig(work, ProcessConfig.Replace("step-ms = 20", "step-ms = 600000"));
        using var p = EctProcess.Start("train", "--config", config, "--run-dir", Path.Combine(work, "run"));
        var o = p.StandardOutput.ReadToEndAsync();
        for (int i = 0; i < 300 && !File.Exists(Path.Combine(work, "run", "stats.jsonl")); i++) await Task.Delay(100);
        await Task.Delay(1000);
        SmallDisk.Sh("kill", "-TERM", p.Id.ToString());
        await Task.Delay(500);
        p.HasExited.Should().BeFalse("the first signal asks for a clean stop (60 s by default)");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        SmallDisk.Sh("kill", "-TERM", p.Id.ToString());
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(20));
        p.ExitCode.Should().Be(143, "the default action of SIGTERM: 128 + 15");
        clock.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(10));
    }
}
