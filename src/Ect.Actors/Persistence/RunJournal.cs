using Ect.Actors.Persistence.Events;
using Google.Protobuf;
using Microsoft.Data.Sqlite;

namespace Ect.Actors.Persistence;

/// <summary>Reads a run's SQLite journal directly (for tests and inspection tools; the daemon itself recovers through Akka).</summary>
public static class RunJournal
{
    public sealed record Entry(long SequenceNr, string Manifest, IMessage Event);

    public const string DefaultFile = "journal.db";

    /// <summary>
    /// The events of one run, oldest first: by default the run that <paramref name="runDir"/> holds (its run.json's
    /// persistence id; "ect-run" for a directory without one), read from the SQLite <paramref name="file"/> in it.
    /// </summary>
    public static IReadOnlyList<Entry> Read(string runDir, string file = DefaultFile, string? persistenceId = null)
    {
        persistenceId ??= Run.RunIdentity.PersistenceIdOf(runDir);
        var path = Path.Combine(runDir, file);
        if (!File.Exists(path)) throw new FileNotFoundException($"No journal at {path}", path);
        try { return ReadWith(path, "ReadOnly", persistenceId); }
        catch (SqliteException e) when (e.SqliteErrorCode == 8)
        {
            // SQLITE_READONLY: the writer was killed with its write-ahead log not yet checkpointed, and a read-only
            // connection may not replay it. A read-write connection recovers the log exactly as a restart would.
            return ReadWith(path, "ReadWrite", persistenceId);
        }
    }

    private static List<Entry> ReadWith(string path, string mode, string persistenceId)
    {
        var result = new List<Entry>();
        using var conn = new SqliteConnection($"Data Source={path};Mode={mode};Pooling=False");
        conn.Open();
        using var cmd = conn.CreateCommand();
        cmd.CommandText = "SELECT sequence_number, manifest, message FROM journal WHERE persistence_id = $p AND deleted = 0 ORDER BY sequence_number";
        cmd.Parameters.AddWithValue("$p", persistenceId);
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            var manifest = r.GetString(1);
            var bytes = (byte[])r.GetValue(2);
            result.Add(new Entry(r.GetInt64(0), manifest, RunEventSerializer.Parse(bytes, manifest)));
        }
        return result;
    }

    public static IEnumerable<T> Events<T>(IEnumerable<Entry> entries) where T : IMessage => entries.Select(e => e.Event).OfType<T>();
}
