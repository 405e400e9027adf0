using Ect.Actors.Persistence.Events;
using Google.Protobuf;
using Microsoft.Data.Sqlite;

namespace Ect.Actors.Persistence;

/// <summary>Reads a run's SQLite journal directly (for tests and inspection tools; the daemon itself recovers through Akka).</summary>
public static class RunJournal
{
    /// <summary>One journaled event; <see cref="Created"/> is when the journal stored it (UTC), when the row says.</summary>
    public sealed record Entry(long SequenceNr, string Manifest, IMessage Event)
    {
        public DateTime? Created { get; init; }
    }

    public const string DefaultFile = "journal.db";

    /// <summary>
    /// The events of one run, oldest first: by default the run that <paramref name="runDir"/> holds (its run.json's
    /// persistence id; "ect-run" for a directory without one), read from the SQLite <paramref name="file"/> in it.
    /// </summary>
    public static IReadOnlyList<Entry> Read(string runDir, string file = DefaultFile, string? persistenceId = null) =>
        ReadAfter(runDir, 0, file, persistenceId);

    /// <summary>The events with a sequence number above <paramref name="afterSequenceNr"/> (0 = all), oldest first.</summary>
    public static IReadOnlyList<Entry> ReadAfter(string runDir, long afterSequenceNr, string file = DefaultFile, string? persistenceId = null)
    {
        persistenceId ??= Run.RunIdentity.PersistenceIdOf(runDir);
        var path = Path.Combine(runDir, file);
        if (!File.Exists(path)) throw new FileNotFoundException($"No journal at {path}", path);
        try { return ReadWith(path, "ReadOnly", persistenceId, afterSequenceNr); }
        catch (SqliteException e) when (e.SqliteErrorCode == 8)
        {
            // SQLITE_READONLY: the writer was killed with its write-ahead log not yet checkpointed, and a read-only
            // connection may not replay it. A read-write connection recovers the log exactly as a restart would.
            return ReadWith(path, "ReadWrite", persistenceId, afterSequenceNr);
        }
    }

    private static List<Entry> ReadWith(string path, string mode, string persistenceId, long afterSequenceNr)
    {
        var result = new List<Entry>();
        using var conn = new SqliteConnection($"Data Source={path};Mode={mode};Pooling=False");
        conn.Open();
        using var cmd = conn.CreateCommand();
        cmd.CommandText = "SELECT sequence_number, manifest, message, created FROM journal WHERE persistence_id = $p AND deleted = 0 AND sequence_number > $after ORDER BY sequence_number";
        cmd.Parameters.AddWithValue("$p", persistenceId);
        cmd.Parameters.AddWithValue("$after", afterSequenceNr);
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            var manifest = r.GetString(1);
            var bytes = (byte[])r.GetValue(2);
            result.Add(new Entry(r.GetInt64(0), manifest, RunEventSerializer.Parse(bytes, manifest))
            {
                Created = r.IsDBNull(3) ? null : FromCreated(r.GetInt64(3)),
            });
        }
        return result;
    }

    /// <summary>Akka.Persistence.Sql stores `created` as DateTime ticks (UTC); older plugins used Unix milliseconds.</summary>
    public static DateTime? FromCreated(long v) =>
        v > 100_000_000_000_000_000L && v <= DateTime.MaxValue.Ticks ? new DateTime(v, DateTimeKind.Utc)
        : v > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(v).UtcDateTime
        : null;

    public static IEnumerable<T> Events<T>(IEnumerable<Entry> entries) where T : IMessage => entries.Select(e => e.Event).OfType<T>();
}
