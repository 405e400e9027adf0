using Ect.Actors.Daemon;
using Ect.Actors.Engine;
using Ect.Actors.Persistence;
using Ect.Actors.Persistence.Events;
using FluentAssertions;
using Xunit;
using static Ect.Actors.Tests.RunTests.DaemonHarness;
using ConfigurationException = Ect.Actors.Configuration.ConfigurationException;

namespace Ect.Actors.Tests.RunTests;

/// <summary>
/// A run directory or journal that cannot be written is named as such, with the operating system's reason and the
/// fix: never "another `ect train` is running" (a read-only mount used to say that), never an unhandled exception
/// (an immutable folder), never "start again to resume" when a restart would fail the same way (an immutable journal).
/// </summary>
public class RunDirectoryFailureTests
{
    private static Task<Run.RunOutcome> Start(string dir, params string[] sets) =>
        RunDaemon.RunAsync(Settings(sets), dir, Engines.Fake, CancellationToken.None, TextWriter.Null);

    [MountFact]
    public async Task A_read_only_mount_is_reported_as_read_only_not_as_another_daemon()
    {
        var dir = NewRunDir();
        Privileged.MountTmpfs(dir, "1m", readOnly: true);
        try
        {
            var act = () => Start(dir);
            var e = (await act.Should().ThrowAsync<ConfigurationException>()).Which;
            e.Message.Should().Contain(dir).And.Contain("not writable").And.Contain("Read-only file system").And.Contain("remount");
            e.Message.Should().NotContain("is running on this run directory");
        }
        finally { Privileged.Unmount(dir); }
    }

    [ChattrFact]
    public async Task An_immutable_run_directory_is_refused_by_name_not_with_an_unhandled_exception()
    {
        var dir = NewRunDir();
        Privileged.Immutable(dir, true);
        try
        {
            var act = () => Start(dir);
            var e = (await act.Should().ThrowAsync<ConfigurationException>()).Which;
            e.Message.Should().Contain(dir).And.Contain("not writable").And.Contain("Operation not permitted").And.Contain("chattr -i");
            e.Message.Should().NotContain("is running on this run directory");
        }
        finally { Privileged.Immutable(dir, false); }
    }

    [ChattrFact]
    public async Task An_immutable_journal_is_refused_at_start_naming_the_file_and_why()
    {
        var dir = NewRunDir();
        (await Start(dir, "run.max-steps=12")).Step.Should().Be(12);
        var journal = Path.Combine(dir, "journal.db");
        Privileged.Immutable(journal, true);
        try
        {
            var act = () => Start(dir);
            var e = (await act.Should().ThrowAsync<ConfigurationException>()).Which;
            e.Message.Should().Contain(journal).And.Contain("cannot be written").And.Contain("Operation not permitted")
                .And.Contain("chattr -i");
        }
        finally { Privileged.Immutable(journal, false); }
        (await Start(dir)).ExitCode.Should().Be(0, "made writable again, the run resumes and finishes");
    }

    [ChattrFact]
    public async Task A_journal_that_becomes_unwritable_mid_run_stops_the_run_saying_so_and_a_fixed_restart_loses_nothing()
    {
        var clean = NewRunDir();
        (await Start(clean)).ExitCode.Should().Be(0);

        var dir = NewRunDir();
        var journal = Path.Combine(dir, "journal.db");
        var firstCheckpoint = Path.Combine(dir, "checkpoints", "ckpt-000000010.ckpt");
        var made = false;
        try
        {
            var run = RunDaemon.RunAsync(Settings("fake.step-ms=25"), dir, Engines.Fake, CancellationToken.None, TextWriter.Null,
                onStarted: (_, _) => _ = Task.Run(async () =>
                {
                    // Once the first checkpoint is on disk (its commit follows), the journal becomes immutable.
                    while (!File.Exists(firstCheckpoint)) await Task.Delay(10);
                    Privileged.Immutable(journal, true);
                    made = true;
                }));
            var outcome = await run.WaitAsync(TimeSpan.FromMinutes(2));
            made.Should().BeTrue();
            outcome.ExitCode.Should().Be(1);
            // SQLite's words depend on the moment the file became immutable: "attempt to write a readonly database"
            // (opened read-only) or "disk I/O error" (its rollback journal could not be written).
            outcome.Message.Should().Contain(journal).And.Contain("cannot be written").And.Contain("SQLite Error")
                .And.Contain("chattr -i");
            outcome.Message.Should().NotStartWith("the run coordinator stopped unexpectedly");
        }
        finally { if (made) Privileged.Immutable(journal, false); }

        (await Start(dir)).ExitCode.Should().Be(0);
        Finished(dir).WeightsSha256.Should().Be(Finished(clean).WeightsSha256, "nothing journaled was lost");
        Finished(dir).EmaSha256.Should().Be(Finished(clean).EmaSha256);
        CheckpointStepsOnce(dir);
    }
}
