using Akka.Actor;
using Akka.Configuration;
using Ect.Actors.Cli;
using Ect.Actors.Tests.Persistence;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.Runs;

[Collection("Console")]
public sealed class RunsVerbTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ect-runs-").FullName;

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, true);
    }

    private static Config SqliteConfig(string file)
    {
        var cs = $"\"Data Source={file}\"";
        return ConfigurationFactory.ParseString($$"""
            akka.loglevel = WARNING
            akka.persistence {
              journal.plugin = "akka.persistence.journal.sql"
              journal.sql { class = "Akka.Persistence.Sql.Journal.SqlWriteJournal, Akka.Persistence.Sql"
                            connection-string = {{cs}}, provider-name = "SQLite.MS", auto-initialize = on }
              snapshot-store.plugin = "akka.persistence.snapshot-store.sql"
              snapshot-store.sql { class = "Akka.Persistence.Sql.Snapshot.SqlSnapshotStore, Akka.Persistence.Sql"
                                   connection-string = {{cs}}, provider-name = "SQLite.MS", auto-initialize = on }
            }
            """ + CounterActor.SerializationHocon);
    }

    [Fact]
    public async Task Lists_each_persistence_id_with_its_last_sequence_number_manifest_and_snapshot()
    {
        var file = Path.Combine(_dir, RunsVerb.DefaultJournalFile);
        var before = DateTime.UtcNow.AddSeconds(-5);
        var sys = ActorSystem.Create("runs-test", SqliteConfig(file));
        try
        {
            var a = sys.ActorOf(CounterActor.Props("run-alpha"));
            var b = sys.ActorOf(CounterActor.Props("run-beta"));
            for (var i = 0; i < 7; i++) await a.Ask<long>(new Add($"a{i}"), TimeSpan.FromSeconds(20));
            for (var i = 0; i < 3; i++) await b.Ask<long>(new Add($"b{i}"), TimeSpan.FromSeconds(20));
            (await b.Ask<long>(new TakeSnapshot(), TimeSpan.FromSeconds(20))).Should().Be(3);
        }
        finally { await sys.Terminate(); }

        var runs = RunsVerb.Read(file);
        runs.Select(r => (r.PersistenceId, r.LastSequenceNr, r.Events, r.LastManifest, r.LastSnapshotSequenceNr))
            .Should().Equal(("run-alpha", 7L, 7L, CounterSerializer.EventManifest, (long?)null),
                            ("run-beta", 3L, 3L, CounterSerializer.EventManifest, (long?)3));
        runs.Should().AllSatisfy(r => r.LastEventUtc.Should().BeAfter(before).And.BeBefore(DateTime.UtcNow.AddSeconds(5)));

        var (o, e) = (Console.Out, Console.Error);
        var sw = new StringWriter();
        Console.SetOut(sw);
        int code;
        try { code = Program.Main(["runs", "--journal", _dir]); }
        finally { Console.SetOut(o); Console.SetError(e); }
        code.Should().Be(0);
        sw.ToString().Should().Contain("run-alpha").And.Contain("run-beta").And.Contain(CounterSerializer.EventManifest);
    }

    [Fact]
    public void Missing_journal_and_a_non_journal_file_are_clear_errors()
    {
        var act = () => RunsVerb.Read(Path.Combine(_dir, "nope.db"));
        act.Should().Throw<FileNotFoundException>().WithMessage("*nope.db*does not exist*");

        var other = Path.Combine(_dir, "other.db");
        using (var c = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={other}"))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "CREATE TABLE t (x INTEGER)";
            cmd.ExecuteNonQuery();
        }
        act = () => RunsVerb.Read(other);
        act.Should().Throw<InvalidDataException>().WithMessage("*other.db*no `journal` table*");
    }
}
