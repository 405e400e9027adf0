using System.CommandLine;
using System.Globalization;
using Microsoft.Data.Sqlite;
using Spectre.Console;

namespace Ect.Actors.Cli;

/// <summary>
/// `ect runs --journal PATH|RUN_DIR`: the runs (persistence ids) in a SQLite event journal written by
/// Akka.Persistence.Sql (default table mapping: table `journal`), each with its last sequence number, event count,
/// last event's serializer manifest and time, and the latest snapshot. Reads the file read-only.
/// </summary>
public sealed class RunsVerb : ICliVerb
{
    public int Order => 50;

    /// <summary>The journal file name in a run directory (ect.persistence.sqlite-file's default).</summary>
    public const string DefaultJournalFile = "journal.db";

    public sealed record RunInfo(
        string PersistenceId, long LastSequenceNr, long Events, string LastManifest, DateTime? LastEventUtc, long? LastSnapshotSequenceNr);

    public Command Build()
    {
        var journal = new Option<string>("--journal") { Description = "A SQLite journal file, or a run directory holding journal.db.", Required = true };
        var cmd = new Command("runs", "List the runs in a SQLite journal with their last state.");
        cmd.Options.Add(journal);
        cmd.SetAction(r => Run(r.GetValue(journal)!));
        return cmd;
    }

    public static int Run(string journal)
    {
        IReadOnlyList<RunInfo> runs;
        string file;
        try
        {
            file = Directory.Exists(journal) ? Path.Combine(journal, DefaultJournalFile) : journal;
            runs = Read(file);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or SqliteException)
        {
            Console.Error.WriteLine($"ect runs: {e.Message}");
            return 1;
        }
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Out) });
        if (Console.IsOutputRedirected) console.Profile.Width = 240;
        if (runs.Count == 0)
        {
            console.WriteLine($"{file}: no runs (the journal is empty).");
            return 0;
        }
        var table = new Table().AddColumn("persistence id").AddColumn("last seq").AddColumn("events")
            .AddColumn("last event").AddColumn("last event time (UTC)").AddColumn("last snapshot seq");
        foreach (var r in runs)
            table.AddRow(Markup.Escape(r.PersistenceId), r.LastSequenceNr.ToString(CultureInfo.InvariantCulture),
                r.Events.ToString(CultureInfo.InvariantCulture), Markup.Escape(r.LastManifest),
                r.LastEventUtc?.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) ?? "-",
                r.LastSnapshotSequenceNr?.ToString(CultureInfo.InvariantCulture) ?? "-");
        console.Write(table);
        return 0;
    }

    /// <summary>Reads the runs from a journal file (read-only; the daemon may be writing it).</summary>
    public static IReadOnlyList<RunInfo> Read(string file)
    {
        if (!File.Exists(file))
            throw new FileNotFoundException($"Journal '{file}' does not exist (a run directory holds {DefaultJournalFile} once `ect train` has started there).", file);
        var cs = new SqliteConnectionStringBuilder { DataSource = file, Mode = SqliteOpenMode.ReadOnly }.ToString();
        using var conn = new SqliteConnection(cs);
        conn.Open();
        if (!TableExists(conn, "journal"))
            throw new InvalidDataException($"'{file}' has no `journal` table: not an Akka.Persistence.Sql journal (default table mapping)?");
        var snapshots = TableExists(conn, "snapshot") ? LastSnapshots(conn) : new Dictionary<string, long>();

        using var cmd = conn.CreateCommand();
        // The last row per persistence id by sequence number; deleted rows still count for the highest number
        // (Akka keeps sequence numbers monotonic across deletes) but not as events.
        cmd.CommandText = """
            SELECT j.persistence_id, j.sequence_number, j.manifest, j.created,
                   (SELECT COUNT(*) FROM journal c WHERE c.persistence_id = j.persistence_id AND c.deleted = 0)
            FROM journal j
            JOIN (SELECT persistence_id, MAX(sequence_number) AS seq FROM journal GROUP BY persistence_id) m
              ON m.persistence_id = j.persistence_id AND m.seq = j.sequence_number
            ORDER BY j.persistence_id
            """;
        var list = new List<RunInfo>();
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            var pid = r.GetString(0);
            list.Add(new RunInfo(pid, r.GetInt64(1), r.GetInt64(4), r.IsDBNull(2) ? "" : r.GetString(2),
                r.IsDBNull(3) ? null : Persistence.RunJournal.FromCreated(r.GetInt64(3)), snapshots.TryGetValue(pid, out var s) ? s : null));
        }
        return list;
    }

    private static Dictionary<string, long> LastSnapshots(SqliteConnection conn)
    {
        using var cmd = conn.CreateCommand();
        cmd.CommandText = "SELECT persistence_id, MAX(sequence_number) FROM snapshot GROUP BY persistence_id";
        using var r = cmd.ExecuteReader();
        var d = new Dictionary<string, long>(StringComparer.Ordinal);
        while (r.Read()) d[r.GetString(0)] = r.GetInt64(1);
        return d;
    }

    private static bool TableExists(SqliteConnection conn, string name)
    {
        using var cmd = conn.CreateCommand();
        cmd.CommandText = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $n";
        cmd.Parameters.AddWithValue("$n", name);
        return (long)cmd.ExecuteScalar()! > 0;
    }
}
