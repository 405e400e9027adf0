using Ect.Actors.Persistence;
using Ect.Actors.Persistence.Events;
using Ect.Actors.Run;
using FluentAssertions;
using Microsoft.Data.Sqlite;
using Xunit;
using static Ect.Actors.Tests.RunTests.DaemonHarness;

namespace Ect.Actors.Tests.Runs;

/// <summary>
/// One reader of the journal (issue 13): a run directory's events (RunJournal, `ect history`, `ect inspect`) are the
/// catalog's (`ect runs`, the run-identity check), row for row, and a journal without its table is refused by name.
/// </summary>
[Collection("Console")]
public sealed class JournalReaderTests
{
    [Fact]
    public async Task A_run_directory_reads_the_same_events_as_the_catalog()
    {
        var dir = NewRunDir();
        (await RunDaemonAsync(dir, Settings())).ExitCode.Should().Be(0);
        var pid = RunIdentity.PersistenceIdOf(dir);
        var viaRunDir = RunJournal.Read(dir);
        var catalog = JournalCatalog.Sqlite(Path.Combine(dir, RunJournal.DefaultFile));
        var viaCatalog = catalog.Events(pid);

        viaRunDir.Should().NotBeEmpty();
        viaRunDir.Select(e => (e.SequenceNr, e.Manifest, e.Created)).Should().Equal(viaCatalog.Select(e => (e.SequenceNr, e.Manifest, e.Created)));
        viaRunDir.Should().OnlyContain(e => e.Created != null, "every row of Akka.Persistence.Sql records when it was stored");
        RunJournal.Events<RunStarted>(viaRunDir).Should().ContainSingle();
        // The catalog's summary is the replay of the same events.
        var summary = catalog.Run(pid)!;
        summary.Events.Should().Be(viaRunDir.Count);
        summary.LastSequenceNr.Should().Be(viaRunDir[^1].SequenceNr);
        summary.Finished.Should().BeTrue();
        // ReadAfter (`ect history --follow`) is the suffix.
        var after = viaRunDir[viaRunDir.Count / 2].SequenceNr;
        RunJournal.ReadAfter(dir, after).Select(e => e.SequenceNr).Should().Equal(viaRunDir.Where(e => e.SequenceNr > after).Select(e => e.SequenceNr));
    }

    [Fact]
    public void A_journal_file_without_its_table_is_refused_naming_the_file()
    {
        var dir = NewRunDir();
        var file = Path.Combine(dir, RunJournal.DefaultFile);
        using (var c = new SqliteConnection($"Data Source={file};Pooling=False"))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "CREATE TABLE other (x INTEGER)";
            cmd.ExecuteNonQuery();
        }
        var read = () => RunJournal.Read(dir);
        read.Should().Throw<JournalCatalog.NoJournalTableException>().WithMessage($"*{file}*no `journal` table*");
        JournalCatalog.Sqlite(file).Events("ect-run").Should().BeEmpty("the catalog's lenient read: an empty stream");
        var (code, _, err) = CliHarness.Run("history", dir);
        code.Should().Be(1);
        err.Should().Contain(file).And.Contain("no `journal` table");
    }
}
