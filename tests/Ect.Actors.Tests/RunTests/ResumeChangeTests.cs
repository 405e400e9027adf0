using Ect.Actors.Configuration;
using Ect.Actors.Engine;
using Ect.Actors.Persistence;
using Ect.Actors.Persistence.Events;
using Ect.Actors.Run;
using FluentAssertions;
using Xunit;
using static Ect.Actors.Tests.RunTests.DaemonHarness;

namespace Ect.Actors.Tests.RunTests;

/// <summary>What a restart may change (the data location, the step cap) and what it reports (a deleted checkpoint).</summary>
public class ResumeChangeTests
{
    /// <summary>Settings as `ect train` builds them: the given keys are marked explicit.</summary>
    private static RunSettings Cli(params string[] sets) =>
        Settings(sets) with { ExplicitKeys = EctConfiguration.ExplicitKeys([], Tiny.Concat(sets)) };

    /// <summary>The fake engine behind a data check like the real one's: a missing data folder fails the trainer's start.</summary>
    private static readonly EngineFactory NeedsData = (s, dir) =>
    {
        if (!Directory.Exists(s.DataPath)) throw new DirectoryNotFoundException($"dataset {s.DataPath} does not exist");
        return Engines.Fake(s, dir);
    };

    [Fact]
    public async Task A_wrong_data_path_journaled_with_the_run_can_be_corrected_on_resume()
    {
        var data = Directory.CreateTempSubdirectory("ect-data-").FullName;
        var dir = NewRunDir();
        var bad = await RunDaemonAsync(dir, Cli("data.path=/no/such/dataset"), NeedsData);
        bad.ExitCode.Should().Be(1);
        bad.Message.Should().Contain("/no/such/dataset");

        // A plain restart keeps the journaled location (it must not fall back to the default data) and fails again.
        var again = await RunDaemonAsync(dir, Cli(), NeedsData);
        again.ExitCode.Should().Be(1);
        again.Message.Should().Contain("/no/such/dataset");

        // The corrected location given on the command line is journaled and used: the run trains to the end.
        var fixedRun = await RunDaemonAsync(dir, Cli($"data.path={data}"), NeedsData);
        fixedRun.ExitCode.Should().Be(0, fixedRun.Message);
        Finished(dir).Step.Should().Be(60);
        var change = RunJournal.Events<ConfigChanged>(RunJournal.Read(dir)).Where(c => c.Key == "ect.data.path").Should().ContainSingle().Subject;
        change.Value.Should().Be($"\"{data}\"");
        change.Step.Should().Be(0, "a data location holds for the whole run");

        // The same bits as a run that had the right location from the start (the location is not part of the computation).
        var reference = NewRunDir();
        (await RunDaemonAsync(reference, Cli($"data.path={data}"), NeedsData)).ExitCode.Should().Be(0);
        Finished(dir).WeightsSha256.Should().Be(Finished(reference).WeightsSha256);
    }

    [Fact]
    public async Task A_data_path_that_is_not_given_explicitly_does_not_change_a_run()
    {
        var dir = NewRunDir();
        (await RunDaemonAsync(dir, Cli("data.path=/data/a", "run.max-steps=10"))).Step.Should().Be(10);
        // Not explicit (as if from the defaults): no change is journaled.
        (await RunDaemonAsync(dir, Settings("data.path=/data/b", "run.max-steps=20"))).Step.Should().Be(20);
        RunJournal.Events<ConfigChanged>(RunJournal.Read(dir)).Should().NotContain(c => c.Key == "ect.data.path");
        // Given explicitly: journaled.
        (await RunDaemonAsync(dir, Cli("data.path=/data/c", "run.max-steps=30"))).Step.Should().Be(30);
        RunJournal.Events<ConfigChanged>(RunJournal.Read(dir)).Where(c => c.Key == "ect.data.path")
            .Should().ContainSingle().Which.Value.Should().Be("\"/data/c\"");
    }

    [Fact]
    public async Task A_deleted_checkpoint_is_reported_by_name_and_the_run_resumes_from_the_one_before()
    {
        var clean = NewRunDir();
        (await RunDaemonAsync(clean, Settings())).ExitCode.Should().Be(0);
        var dir = NewRunDir();
        (await RunDaemonAsync(dir, Settings("run.max-steps=25"))).Step.Should().Be(25);
        File.Delete(Path.Combine(dir, "checkpoints", "ckpt-000000025.ckpt"));

        (await RunDaemonAsync(dir, Settings())).ExitCode.Should().Be(0);
        var rb = RunJournal.Events<RolledBack>(RunJournal.Read(dir)).Should().ContainSingle().Subject;
        (rb.FromStep, rb.ToStep).Should().Be((25L, 20L));
        rb.Reason.Should().Contain("ckpt-000000025.ckpt").And.Contain("missing");
        Finished(dir).WeightsSha256.Should().Be(Finished(clean).WeightsSha256);
    }

    [Fact]
    public async Task Only_checkpoints_the_prune_keeps_are_reported_missing_not_the_pruned_ones()
    {
        var dir = NewRunDir();
        (await RunDaemonAsync(dir, Settings("run.max-steps=50", "checkpoint.keep-last=2"))).Step.Should().Be(50);
        // The prune keeps 40 and 50 (10, 20, 30 are gone or going); someone deletes the newest. (Deleting every file
        // is refused before any replay: the run directory no longer holds the journal's run, RunIdentityTests.)
        File.Delete(Path.Combine(dir, "checkpoints", "ckpt-000000050.ckpt"));

        (await RunDaemonAsync(dir, Settings("checkpoint.keep-last=2"))).ExitCode.Should().Be(0);
        var rolledBack = RunJournal.Events<RolledBack>(RunJournal.Read(dir)).ToList();
        rolledBack.Select(r => r.FromStep).Should().Equal([50L], "the kept checkpoint was deleted; the pruned ones were meant to go");
        rolledBack.Should().OnlyContain(r => r.ToStep == 40 && r.Reason.Contains("missing"));
    }
}
