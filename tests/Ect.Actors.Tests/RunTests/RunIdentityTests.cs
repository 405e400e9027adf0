using Ect.Actors.Configuration;
using Ect.Actors.Persistence;
using Ect.Actors.Persistence.Events;
using Ect.Actors.Engine;
using Ect.Actors.Run;
using FluentAssertions;
using Xunit;
using static Ect.Actors.Tests.RunTests.DaemonHarness;
using Ect.Actors.Checkpoints;

namespace Ect.Actors.Tests.RunTests;

/// <summary>
/// A run's identity (run.json, the journal stream's persistence id, every checkpoint's metadata) and the check
/// that a run directory and the journal belong together, on SQLite (the PostgreSQL side: Postgres.PostgresRunTests).
/// </summary>
public class RunIdentityTests
{
    private static string JournalFile(string dir) => Path.Combine(dir, RunJournal.DefaultFile);

    [Fact]
    public async Task A_new_run_has_an_identity_in_run_json_its_journal_stream_and_every_checkpoint()
    {
        var dir = NewRunDir();
        (await RunDaemonAsync(dir, Settings())).ExitCode.Should().Be(0);

        var id = RunIdentity.Read(dir)!;
        id.Name.Should().Be(Path.GetFileName(dir));
        Guid.TryParse(id.Id, out _).Should().BeTrue(id.Id);
        id.PersistenceId.Should().Be("ect-run-" + id.Id);
        RunJournal.Read(dir, persistenceId: RunIdentity.LegacyPersistenceId).Should().BeEmpty("the run writes its own stream, not \"ect-run\"");
        var started = RunJournal.Events<RunStarted>(RunJournal.Read(dir, persistenceId: id.PersistenceId)).Should().ContainSingle().Subject;
        (started.RunUuid, started.RunId, started.RunDir).Should().Be((id.Id, id.Name, RunIdentity.FullPath(dir)));

        var files = CheckpointMetadata.FilesIn(dir);
        files.Should().NotBeEmpty();
        foreach (var f in files)
        {
            var m = CheckpointMetadata.Read(f)!;
            (m[RunIdentity.IdKey], m[RunIdentity.NameKey], m[RunIdentity.PersistenceIdKey]).Should().Be((id.Id, id.Name, id.PersistenceId), f);
        }
        var row = RunsVerb_Read(dir).Should().ContainSingle().Subject;
        (row.RunId, row.Name, row.RunDirectory, row.Phase, row.Step, row.Finished).Should().Be((id.Id, id.Name, RunIdentity.FullPath(dir), Phases.Finished, 60L, true));
    }

    private static IReadOnlyList<JournalCatalog.RunSummary> RunsVerb_Read(string dir) => Ect.Actors.Cli.RunsVerb.Read(JournalFile(dir));

    /// <summary>
    /// tests/Ect.Actors.Tests/Fixtures/legacy-run: written by the `ect` of commit 6b8c010 (before run identities:
    /// persistence id "ect-run", a snapshot at event 5, checkpoints without a run id), stopped by its step cap at 25
    /// of 40 steps (Fixtures/legacy-run.conf). Continued now, it ends with the bits of an uninterrupted new run.
    /// </summary>
    [Fact]
    public async Task A_journal_written_before_run_identities_resumes_to_the_bits_of_an_uninterrupted_run()
    {
        var fixture = Path.Combine(RepoRoot.Find(), "tests", "Ect.Actors.Tests", "Fixtures");
        var dir = NewRunDir();
        foreach (var f in Directory.EnumerateFiles(Path.Combine(fixture, "legacy-run"), "*", SearchOption.AllDirectories))
        {
            var to = Path.Combine(dir, Path.GetRelativePath(Path.Combine(fixture, "legacy-run"), f));
            Directory.CreateDirectory(Path.GetDirectoryName(to)!);
            File.Copy(f, to);
        }
        var before = RunJournal.Read(dir, persistenceId: RunIdentity.LegacyPersistenceId);
        before.Should().HaveCount(8, "the fixture's journal: RunStarted ... RunInterrupted at step 25");
        RunJournal.Events<RunStarted>(before).Single().RunUuid.Should().BeEmpty("written before identities");
        CheckpointMetadata.Read(CheckpointMetadata.FilesIn(dir)[^1])!.Should().NotContainKey(RunIdentity.IdKey);

        RunSettings Legacy() => RunSettings.From(EctConfiguration.Load(Path.Combine(fixture, "legacy-run.conf"), []), checkData: false);
        (await RunDaemonAsync(dir, Legacy())).ExitCode.Should().Be(0);

        var id = RunIdentity.Read(dir)!;
        id.PersistenceId.Should().Be(RunIdentity.LegacyPersistenceId, "the old stream is continued, not a new run started");
        var after = RunJournal.Read(dir);
        after.Take(8).Select(e => e.SequenceNr).Should().Equal(before.Select(e => e.SequenceNr));
        RunJournal.Events<RunDirectoryChanged>(after).Should().ContainSingle().Which.ToDir.Should().Be(RunIdentity.FullPath(dir));
        var finished = Finished(dir);
        finished.Step.Should().Be(40);
        CheckpointMetadata.Read(Path.Combine(dir, "checkpoints", "ckpt-000000040.ckpt"))![RunIdentity.IdKey].Should().Be(id.Id);

        var reference = NewRunDir();
        (await RunDaemonAsync(reference, Legacy())).ExitCode.Should().Be(0);
        var expected = Finished(reference);
        (finished.WeightsSha256, finished.EmaSha256).Should().Be((expected.WeightsSha256, expected.EmaSha256));
    }

    [Fact]
    public async Task A_run_directory_without_the_checkpoints_its_journal_records_is_refused_naming_both()
    {
        var dir = NewRunDir();
        (await RunDaemonAsync(dir, Settings("run.max-steps=25"))).ExitCode.Should().Be(0);
        var events = RunJournal.Read(dir).Count;
        Directory.Delete(Path.Combine(dir, Checkpointer.Folder), true);

        var outcome = await RunDaemonAsync(dir, Settings());
        outcome.ExitCode.Should().Be(2);
        outcome.Message.Should().Contain(RunIdentity.FullPath(dir)).And.Contain(JournalFile(dir)).And.Contain("is at step 25")
            .And.Contain("none of its checkpoints").And.Contain("checkpoints/ckpt-000000020.ckpt");
        RunJournal.Read(dir).Should().HaveCount(events, "a refused start journals nothing");
        Directory.Exists(Path.Combine(dir, Checkpointer.Folder)).Should().BeFalse("nothing was trained");
    }

    [Fact]
    public async Task A_finished_run_whose_checkpoints_are_gone_is_refused_as_finished()
    {
        var dir = NewRunDir();
        (await RunDaemonAsync(dir, Settings())).ExitCode.Should().Be(0);
        foreach (var f in CheckpointMetadata.FilesIn(dir)) File.Delete(f);
        var outcome = await RunDaemonAsync(dir, Settings());
        outcome.ExitCode.Should().Be(2);
        outcome.Message.Should().Contain("finished at step 60").And.Contain(RunIdentity.FullPath(dir)).And.Contain("none of its checkpoints");
    }

    [Fact]
    public async Task A_run_directory_pointed_at_another_journal_is_refused_naming_both()
    {
        // Run A journals into A/journal.db; the same directory then pointed at a journal that does not hold it.
        var a = NewRunDir();
        (await RunDaemonAsync(a, Settings("run.max-steps=25"))).ExitCode.Should().Be(0);
        var other = NewRunDir();
        (await RunDaemonAsync(other, Settings("run.max-steps=5"))).ExitCode.Should().Be(0);
        var otherEvents = RunJournal.Read(other).Count;

        var outcome = await RunDaemonAsync(a, Settings($"persistence.sqlite-file={JournalFile(other)}"));
        outcome.ExitCode.Should().Be(2);
        var id = RunIdentity.Read(a)!;
        outcome.Message.Should().Contain(JournalFile(other)).And.Contain(RunIdentity.FullPath(a)).And.Contain(id.Id).And.Contain("holds no events");
        Ect.Actors.Cli.RunsVerb.Read(JournalFile(other)).Should().ContainSingle("run A was not started in the other journal");
        RunJournal.Read(other).Should().HaveCount(otherEvents);
    }

    [Fact]
    public async Task A_checkpoint_of_another_run_in_the_directory_is_refused()
    {
        var a = NewRunDir();
        var b = NewRunDir();
        (await RunDaemonAsync(a, Settings("run.max-steps=25"))).ExitCode.Should().Be(0);
        (await RunDaemonAsync(b, Settings("run.max-steps=25"))).ExitCode.Should().Be(0);
        File.Copy(Path.Combine(b, "checkpoints", "ckpt-000000020.ckpt"), Path.Combine(a, "checkpoints", "ckpt-000000030.ckpt"));
        var outcome = await RunDaemonAsync(a, Settings());
        outcome.ExitCode.Should().Be(2);
        outcome.Message.Should().Contain("ckpt-000000030.ckpt").And.Contain(RunIdentity.Read(b)!.Id).And.Contain(RunIdentity.Read(a)!.Id);
    }

    [Fact]
    public async Task A_copied_run_directory_is_refused_while_the_original_holds_the_run_and_a_moved_one_continues()
    {
        var root = Directory.CreateTempSubdirectory("ect-move-").FullName;
        var shared = Path.Combine(root, "shared.db"); // one journal outside the run directories, as PostgreSQL would be
        var a = Path.Combine(root, "a");
        (await RunDaemonAsync(a, Settings("run.max-steps=25", $"persistence.sqlite-file={shared}"))).ExitCode.Should().Be(0);
        var copy = Path.Combine(root, "copy");
        CopyDirectory(a, copy);
        var refused = await RunDaemonAsync(copy, Settings($"persistence.sqlite-file={shared}"));
        refused.ExitCode.Should().Be(2);
        refused.Message.Should().Contain("is a copy").And.Contain(RunIdentity.FullPath(a)).And.Contain(RunIdentity.FullPath(copy));

        var moved = Path.Combine(root, "moved");
        Directory.Delete(copy, true);
        Directory.Move(a, moved);
        (await RunDaemonAsync(moved, Settings($"persistence.sqlite-file={shared}"))).ExitCode.Should().Be(0);
        var row = JournalCatalog.Sqlite(shared).Runs().Should().ContainSingle().Subject;
        (row.RunDirectory, row.Finished).Should().Be((RunIdentity.FullPath(moved), true));
    }

    [Fact]
    public async Task A_deleted_run_directory_on_a_shared_journal_is_refused_and_new_run_starts_a_second_run()
    {
        var root = Directory.CreateTempSubdirectory("ect-deleted-").FullName;
        var shared = Path.Combine(root, "shared.db");
        var dir = Path.Combine(root, "run");
        var s = Settings($"persistence.sqlite-file={shared}");
        (await RunDaemonAsync(dir, s)).ExitCode.Should().Be(0);
        var first = RunIdentity.Read(dir)!;
        Directory.Delete(dir, true);

        // Refused before anything starts (a ConfigurationException: `ect train` exits 2 with its message).
        var act = () => RunDaemonAsync(dir, s);
        var refused = (await act.Should().ThrowAsync<ConfigurationException>()).Which;
        refused.Message.Should().Contain(shared).And.Contain(first.Id).And.Contain(RunIdentity.FullPath(dir)).And.Contain("finished at step 60")
            .And.Contain("--new-run");
        File.Exists(Path.Combine(dir, RunIdentity.FileName)).Should().BeFalse("a refused start makes no identity");

        var outcome = await RunDaemonAsync(dir, s, newRun: true);
        outcome.ExitCode.Should().Be(0, outcome.Message);
        var second = RunIdentity.Read(dir)!;
        second.Id.Should().NotBe(first.Id);
        JournalCatalog.Sqlite(shared).Runs().Select(r => (r.RunId, r.Finished)).Should().BeEquivalentTo(new[] { (first.Id, true), (second.Id, true) });
    }

    [Fact]
    public async Task A_lost_run_json_is_recreated_from_the_checkpoints_and_the_run_continues()
    {
        var dir = NewRunDir();
        (await RunDaemonAsync(dir, Settings("run.max-steps=25"))).ExitCode.Should().Be(0);
        var id = RunIdentity.Read(dir)!;
        File.Delete(Path.Combine(dir, RunIdentity.FileName));
        (await RunDaemonAsync(dir, Settings())).ExitCode.Should().Be(0);
        RunIdentity.Read(dir).Should().Be(id);
        Finished(dir).Step.Should().Be(60);
    }

    [Fact]
    public async Task A_run_json_lost_before_any_checkpoint_is_recreated_from_the_directorys_own_journal()
    {
        var dir = NewRunDir();
        (await RunDaemonAsync(dir, Settings("run.max-steps=3"))).ExitCode.Should().Be(0);
        var id = RunIdentity.Read(dir)!;
        foreach (var f in CheckpointMetadata.FilesIn(dir)) File.Delete(f); // step 3: one checkpoint, the stop's
        File.Delete(Path.Combine(dir, RunIdentity.FileName));
        // The identity comes back from the journal; the journal's checkpoint is missing, so the run is refused, not restarted.
        var outcome = await RunDaemonAsync(dir, Settings());
        RunIdentity.Read(dir).Should().Be(id);
        outcome.ExitCode.Should().Be(2);
        outcome.Message.Should().Contain("none of its checkpoints");
    }

    [Theory]
    [InlineData("{ not json")]
    [InlineData("{\"format\": \"ect-run/1\", \"id\": \"\", \"name\": \"x\", \"persistence-id\": \"p\"}")]
    [InlineData("{\"format\": \"ect-run/9\", \"id\": \"a\", \"name\": \"x\", \"persistence-id\": \"p\"}")]
    [InlineData("[1, 2, 3]")]
    public async Task A_damaged_run_json_is_refused_naming_the_file(string text)
    {
        var dir = NewRunDir();
        File.WriteAllText(Path.Combine(dir, RunIdentity.FileName), text);
        var act = () => RunDaemonAsync(dir, Settings());
        (await act.Should().ThrowAsync<ConfigurationException>()).WithMessage($"*{Path.Combine(dir, RunIdentity.FileName)}*");
        File.Exists(JournalFile(dir)).Should().BeFalse("nothing started");
    }

    [Fact]
    public async Task New_run_in_a_directory_that_holds_a_run_is_refused()
    {
        var dir = NewRunDir();
        (await RunDaemonAsync(dir, Settings("run.max-steps=5"))).ExitCode.Should().Be(0);
        var act = () => RunDaemonAsync(dir, Settings(), newRun: true);
        (await act.Should().ThrowAsync<ConfigurationException>()).WithMessage($"*--new-run*{RunIdentity.Read(dir)!.Id}*");
    }

    [Fact]
    public void The_identity_events_round_trip_and_the_snapshot_keeps_where_the_run_lives()
    {
        var ser = new RunEventSerializer(null!);
        var moved = new RunDirectoryChanged { FromDir = "/a", ToDir = "/b", Host = "h2", Step = 25, UnixMs = 1 };
        ser.Manifest(moved).Should().Be("RunDirectoryChanged.v1");
        RunEventSerializer.Parse(ser.ToBinary(moved), "RunDirectoryChanged.v1").Should().Be(moved);

        var st = new RunState();
        st.Apply(new RunStarted { RunId = "r", ConfigHocon = "ect {}", RunUuid = "u-1", RunDir = "/a", Host = "h1" });
        (st.RunUuid, st.RunDirectory, st.Host).Should().Be(("u-1", "/a", "h1"));
        st.Apply(moved);
        var back = RunState.FromSnapshot(RunSnapshot.Parser.ParseFrom(Google.Protobuf.MessageExtensions.ToByteArray(st.ToSnapshot())));
        (back.RunId, back.RunUuid, back.RunDirectory, back.Host).Should().Be(("r", "u-1", "/b", "h2"));

        // A RunStarted of the old form (fields 1-4 only) reads with the new fields empty.
        var old = RunStarted.Parser.ParseFrom(Google.Protobuf.MessageExtensions.ToByteArray(new RunStarted { RunId = "old", ConfigHocon = "ect {}" }));
        (old.RunUuid, old.RunDir, old.Host).Should().Be(("", "", ""));
    }

    private static void CopyDirectory(string from, string to)
    {
        foreach (var f in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            var t = Path.Combine(to, Path.GetRelativePath(from, f));
            Directory.CreateDirectory(Path.GetDirectoryName(t)!);
            File.Copy(f, t);
        }
    }
}
