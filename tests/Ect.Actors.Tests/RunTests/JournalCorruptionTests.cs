using System.Diagnostics;
using Akka.Actor;
using Ect.Actors.Control;
using Ect.Actors.Daemon;
using Ect.Actors.Engine;
using Ect.Actors.Persistence;
using Ect.Actors.Persistence.Events;
using Ect.Actors.Run;
using FluentAssertions;
using Xunit;
using Xunit.Abstractions;
using static Ect.Actors.Tests.RunTests.DaemonHarness;

namespace Ect.Actors.Tests.RunTests;

/// <summary>
/// Issue 12, point 5: a damaged journal.db (truncated, random bytes, gone while checkpoints exist) ends `ect train`
/// within seconds with one message naming the file, SQLite's error and what to do; `ect train --rebuild-journal`
/// rebuilds the journal from the checkpoint files and the run ends with the digests of an uninterrupted run.
/// </summary>
public class JournalCorruptionTests(ITestOutputHelper output)
{
    private static string JournalOf(string dir) => Path.Combine(dir, "journal.db");

    /// <summary>A run stopped at step 40 (checkpoints 20, 30, 40 on disk with keep-last 3).</summary>
    private static async Task<string> StoppedRun()
    {
        var dir = NewRunDir();
        (await RunDaemonAsync(dir, Settings("run.max-steps=40"))).Step.Should().Be(40);
        JournalPreflight.CheckpointFiles(dir).Select(c => c.Step).Should().Equal(20, 30, 40);
        return dir;
    }

    private static void Truncate(string dir)
    {
        var path = JournalOf(dir);
        File.Exists(path + "-wal").Should().BeFalse("the daemon checkpoints SQLite's log on a clean exit: journal.db holds everything");
        var bytes = File.ReadAllBytes(path);
        bytes.Length.Should().BeGreaterThan(8192);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
    }

    private static void RandomBytes(string dir)
    {
        var path = JournalOf(dir);
        var bytes = new byte[new FileInfo(path).Length];
        new Random(12).NextBytes(bytes);
        File.WriteAllBytes(path, bytes);
    }

    private async Task<RunOutcome> RefusedQuickly(string dir, bool rebuild = false)
    {
        var clock = Stopwatch.StartNew();
        var outcome = await RunDaemon.RunAsync(Settings(), dir, Engines.Fake, CancellationToken.None, TextWriter.Null, rebuildJournal: rebuild)
            .WaitAsync(TimeSpan.FromSeconds(60));
        output.WriteLine($"{clock.Elapsed.TotalSeconds:F2} s: exit {outcome.ExitCode}: {outcome.Message}");
        clock.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(5), "the check runs before the actor system, not after 30 s of retries");
        return outcome;
    }

    [Theory]
    [InlineData("truncated")]
    [InlineData("random bytes")]
    public async Task A_damaged_journal_is_refused_within_seconds_naming_the_file_the_sqlite_error_and_the_way_out(string damage)
    {
        var dir = await StoppedRun();
        if (damage == "truncated") Truncate(dir); else RandomBytes(dir);
        var before = File.ReadAllBytes(JournalOf(dir));

        var outcome = await RefusedQuickly(dir);
        outcome.ExitCode.Should().Be(1);
        outcome.Message.Should().Contain(JournalOf(dir)).And.Contain("SQLite").And.Contain("--rebuild-journal")
            .And.Contain("another --run-dir").And.Contain("step 40");
        File.ReadAllBytes(JournalOf(dir)).Should().Equal(before, "a refused start does not touch the damaged file");
        File.Exists(Path.Combine(dir, RunDaemon.LockFile)).Should().BeFalse();
    }

    [Fact]
    public async Task A_journal_that_is_gone_while_checkpoints_exist_is_refused_instead_of_starting_again_from_step_0()
    {
        var dir = await StoppedRun();
        File.Delete(JournalOf(dir));
        var outcome = await RefusedQuickly(dir);
        outcome.ExitCode.Should().Be(1);
        outcome.Message.Should().Contain("does not exist").And.Contain("3 checkpoint file(s)").And.Contain("--rebuild-journal");
        File.Exists(JournalOf(dir)).Should().BeFalse();
    }

    [Fact]
    public async Task Ect_train_on_a_truncated_journal_prints_one_error_and_no_stack_trace()
    {
        var dir = await StoppedRun();
        Truncate(dir);
        var conf = Path.Combine(dir, "test.conf");
        File.WriteAllText(conf, "ect { " + string.Join("\n", Tiny) + " }");
        var (code, o, e, took) = await EctProcess.RunAsync(TimeSpan.FromSeconds(60), "train", "--config", conf, "--run-dir", dir);
        output.WriteLine($"exit {code} after {took.TotalSeconds:F1} s\n{o}\n{e}");
        code.Should().Be(1);
        e.Should().Contain("journal.db").And.Contain("--rebuild-journal");
        (o + e).Should().NotContain("   at ", "no stack trace").And.NotContain("Recovery timed out");
        took.Should().BeLessThan(TimeSpan.FromSeconds(20), "process start-up included; the check itself takes milliseconds");
    }

    [Theory]
    [InlineData("truncated")]
    [InlineData("random bytes")]
    public async Task Rebuild_journal_resumes_from_the_last_checkpoint_and_ends_with_the_digests_of_an_uninterrupted_run(string damage)
    {
        var clean = NewRunDir();
        (await RunDaemonAsync(clean, Settings())).ExitCode.Should().Be(0);
        var expected = Finished(clean);

        var dir = await StoppedRun();
        if (damage == "truncated") Truncate(dir); else RandomBytes(dir);
        var damaged = File.ReadAllBytes(JournalOf(dir));

        var log = new StringWriter();
        var outcome = await RunDaemon.RunAsync(Settings(), dir, Engines.Fake, CancellationToken.None, log, rebuildJournal: true)
            .WaitAsync(TimeSpan.FromMinutes(5));
        output.WriteLine(log.ToString());
        outcome.ExitCode.Should().Be(0, outcome.Message);
        var finished = Finished(dir);
        finished.Step.Should().Be(expected.Step);
        finished.WeightsSha256.Should().Be(expected.WeightsSha256, "exact bits after the rebuild");
        finished.EmaSha256.Should().Be(expected.EmaSha256);

        var journal = RunJournal.Read(dir);
        RunJournal.Events<RunInterrupted>(journal).First().Reason.Should().Contain("--rebuild-journal");
        // Resumed at 40: steps 41..60 recomputed, so the first checkpoint committed after the rebuilt ones is 50.
        RunJournal.Events<CheckpointCommitted>(journal).Select(c => c.Step).Should().StartWith([20L, 30L, 40L, 50L]);
        log.ToString().Should().Contain("resumes at step 40");
        var kept = Directory.GetFiles(dir, "journal.db.damaged-*").Where(f => !f.EndsWith("-wal") && !f.EndsWith("-shm")).Should().ContainSingle().Subject;
        File.ReadAllBytes(kept).Should().Equal(damaged, "the damaged journal is kept as it was");
    }

    private static void CopyDir(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
        foreach (var d in Directory.GetDirectories(from)) CopyDir(d, Path.Combine(to, Path.GetFileName(d)));
    }

    [Fact]
    public async Task Rebuild_journal_keeps_the_live_changes_in_effect_so_the_run_ends_with_the_bits_of_a_resume_on_the_intact_journal()
    {
        var dir = NewRunDir();
        var replies = new TaskCompletionSource<(RunCommandReply, RunCommandReply)>();
        // 200 ms steps: `stage` is accepted only in tuning (steps 30-40 here); at 60 ms a loaded CI machine ended the run
        // before it was accepted, and the Ask to the stopped coordinator timed out.
        (await RunDaemonAsync(dir, Settings("run.max-steps=40", "fake.step-ms=200"), onStarted: (sys, coord) => _ = Task.Run(async () =>
        {
            // Refused while the run starts up ("try again"): asked again, each time with a new key.
            async Task<RunCommandReply> Until(Func<int, RunCommand> make)
            {
                RunCommandReply r = null!;
                var deadline = DateTime.UtcNow.AddSeconds(90); // stage waits for tuning: 30 pretraining steps of 200 ms
                for (int i = 0; DateTime.UtcNow < deadline; i++)
                {
                    r = await coord.Ask<RunCommandReply>(make(i), TimeSpan.FromSeconds(30));
                    if (r.Accepted) break;
                    await Task.Delay(20);
                }
                return r;
            }
            var lr = await Until(i => new SetConfigValue($"lr-{i}", "ect.tuning.lr", "0.003"));
            var stage = await Until(i => new SetStage($"stage-{i}", 3));
            replies.TrySetResult((lr, stage));
        }))).Step.Should().Be(40);
        var (lrReply, stageReply) = await replies.Task.WaitAsync(TimeSpan.FromSeconds(30));
        lrReply.Accepted.Should().BeTrue(lrReply.Message);
        stageReply.Accepted.Should().BeTrue(stageReply.Message);
        var journal = RunJournal.Read(dir);
        RunJournal.Events<ConfigChanged>(journal).Where(c => c.Key == "ect.tuning.lr").Should().ContainSingle().Which.Step.Should().BeLessThan(40);
        RunJournal.Events<StageAdvanced>(journal).Where(s => s.ByUser).Should().ContainSingle().Which.Step.Should().BeLessThan(40);

        var copy = dir + "-copy";
        CopyDir(dir, copy);
        (await RunDaemonAsync(dir, Settings())).ExitCode.Should().Be(0);
        var intact = Finished(dir);

        Truncate(copy);
        var log = new StringWriter();
        var outcome = await RunDaemon.RunAsync(Settings(), copy, Engines.Fake, CancellationToken.None, log, rebuildJournal: true).WaitAsync(TimeSpan.FromMinutes(5));
        outcome.ExitCode.Should().Be(0, outcome.Message + log);
        var rebuilt = Finished(copy);
        rebuilt.WeightsSha256.Should().Be(intact.WeightsSha256, "the live changes were carried into the rebuilt journal");
        rebuilt.EmaSha256.Should().Be(intact.EmaSha256);

        var plain = NewRunDir();
        (await RunDaemonAsync(plain, Settings())).ExitCode.Should().Be(0);
        Finished(plain).WeightsSha256.Should().NotBe(intact.WeightsSha256, "the changes matter, or this test proves nothing");
    }

    [Fact]
    public async Task Rebuild_journal_refuses_an_intact_journal_and_a_checkpoint_of_another_batch_size_and_changes_nothing()
    {
        var dir = await StoppedRun();
        var before = File.ReadAllBytes(JournalOf(dir));
        var intact = await RefusedQuickly(dir, rebuild: true);
        intact.ExitCode.Should().Be(2);
        intact.Message.Should().Contain("is intact").And.Contain("nothing was changed");
        File.ReadAllBytes(JournalOf(dir)).Should().Equal(before);

        Truncate(dir);
        var damaged = File.ReadAllBytes(JournalOf(dir));
        var other = await RunDaemon.RunAsync(Settings("data.batch-size=16"), dir, Engines.Fake, CancellationToken.None, TextWriter.Null, rebuildJournal: true)
            .WaitAsync(TimeSpan.FromSeconds(60));
        other.ExitCode.Should().Be(2);
        other.Message.Should().Contain("batch-size = 16").And.Contain("Nothing was changed");
        File.ReadAllBytes(JournalOf(dir)).Should().Equal(damaged);
        Directory.GetFiles(dir, "journal.db.damaged-*").Should().BeEmpty();
    }
}
