using System.Data.Common;
using System.Globalization;
using Akka.Configuration;
using Ect.Actors.Persistence.Events;
using Ect.Actors.Run;
using Google.Protobuf;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Ect.Actors.Persistence;

/// <summary>
/// Reads an Akka.Persistence.Sql journal directly (SQLite file or PostgreSQL database; default table mapping:
/// tables `journal` and `snapshot`), never writing: the runs it holds, each with its identity, recorded run
/// directory, phase, step and last event. For `ect runs` and for the daemon's check, before a run starts, that a
/// run directory and the journal belong together (<see cref="RunIdentity"/>); a stream's events for `ect history`,
/// `ect inspect` and the tests (<see cref="Events"/>, through <see cref="RunJournal"/> for a run directory). The one
/// reader of the journal: its SQL, connections and row decoding live here only. The daemon itself recovers through Akka.
/// </summary>
public sealed class JournalCatalog
{
    /// <summary>One journaled event; <see cref="Created"/> is when the journal stored it (UTC), when the row says.</summary>
    public sealed record Entry(long SequenceNr, string Manifest, IMessage Event)
    {
        public DateTime? Created { get; init; }
    }

    /// <summary>The journal exists but has no `journal` table (a daemon that has created the file, not yet its tables).</summary>
    public sealed class NoJournalTableException(string message) : IOException(message);

    /// <summary>The serializer id of the run's protobuf events (<see cref="RunEventSerializer"/>).</summary>
    public const int RunEventSerializerId = 4711;

    public sealed record RunSummary(
        string PersistenceId, string RunId, string Name, string RunDirectory, string Host, string Phase, long Step, bool Finished,
        long LastSequenceNr, long Events, string LastManifest, DateTime? LastEventUtc, long? LastSnapshotSequenceNr)
    {
        /// <summary>The stream is a run's (it begins with RunStarted), not some other actor's sharing the database.</summary>
        public bool IsRun => Phase.Length > 0;

        /// <summary>How a message names the run: name, id and where it lives.</summary>
        public string Describe() =>
            $"run {(Name.Length > 0 ? Name : "?")} (id {(RunId.Length > 0 ? RunId : PersistenceId)}" +
            $"{(RunDirectory.Length > 0 ? $", run directory {RunDirectory}{(Host.Length > 0 ? $" on {Host}" : "")}" : "")}), " +
            (Finished ? $"finished at step {Step}" : $"{Phase} at step {Step}");
    }

    private readonly string? _sqliteFile;
    private readonly string? _postgres;

    /// <summary>"SQLite journal /abs/journal.db" or "PostgreSQL journal host:port/database" (no password).</summary>
    public string Description { get; }

    private JournalCatalog(string? sqliteFile, string? postgres, string description)
    {
        _sqliteFile = sqliteFile; _postgres = postgres; Description = description;
    }

    public static JournalCatalog Sqlite(string file)
    {
        var full = Path.GetFullPath(file);
        return new JournalCatalog(full, null, $"SQLite journal {full}");
    }

    public static JournalCatalog Postgres(string connectionString)
    {
        NpgsqlConnectionStringBuilder b;
        try { b = new NpgsqlConnectionStringBuilder(connectionString); }
        catch (ArgumentException e) { throw new ArgumentException($"not a PostgreSQL connection string ({e.Message}), e.g. \"Host=127.0.0.1;Port=5432;Username=postgres;Database=postgres\"", e); }
        return new JournalCatalog(null, connectionString, $"PostgreSQL journal {b.Host}:{b.Port}/{b.Database ?? b.Username}");
    }

    /// <summary>The journal a run in <paramref name="runDir"/> writes to with configuration <paramref name="ect"/>.</summary>
    public static JournalCatalog For(Config ect, string runDir) =>
        ect.GetString("ect.persistence.provider", "sqlite") == "postgresql"
            ? Postgres(ect.GetString("ect.persistence.connection-string", ""))
            : Sqlite(Path.Combine(runDir, ect.GetString("ect.persistence.sqlite-file", "journal.db")));

    /// <summary>True for a SQLite file inside <paramref name="runDir"/> (the default: the journal travels with the run directory).</summary>
    public bool IsInside(string runDir) =>
        _sqliteFile != null && Path.GetDirectoryName(_sqliteFile) is { } d && RunIdentity.FullPath(d) == RunIdentity.FullPath(runDir);

    // ---- queries ----

    /// <summary>Every persistence id in the journal with its state (run streams replayed through <see cref="RunState"/>).</summary>
    public IReadOnlyList<RunSummary> Runs()
    {
        using var conn = Open(mustExist: true);
        if (conn == null || !TableExists(conn, "journal")) return [];
        var ids = new List<string>();
        using (var cmd = Command(conn, "SELECT DISTINCT persistence_id FROM journal ORDER BY persistence_id"))
        using (var r = cmd.ExecuteReader())
            while (r.Read()) ids.Add(r.GetString(0));
        var snapshots = LastSnapshots(conn);
        return ids.Select(pid => Summarize(conn, pid, snapshots)).ToList();
    }

    /// <summary>The runs whose recorded run directory (RunStarted, then RunDirectoryChanged) is <paramref name="runDir"/>.</summary>
    public IReadOnlyList<RunSummary> RunsRecordedIn(string runDir)
    {
        var full = RunIdentity.FullPath(runDir);
        using var conn = Open(mustExist: false);
        if (conn == null || !TableExists(conn, "journal")) return [];
        var dirs = new Dictionary<string, string>(StringComparer.Ordinal);
        using (var cmd = Command(conn, """
                   SELECT persistence_id, manifest, message FROM journal
                   WHERE identifier = @s AND manifest IN ('RunStarted.v1', 'RunDirectoryChanged.v1')
                   ORDER BY persistence_id, sequence_number
                   """, ("s", RunEventSerializerId)))
        using (var r = cmd.ExecuteReader())
            while (r.Read())
            {
                IMessage e;
                try { e = RunEventSerializer.Parse((byte[])r.GetValue(2), r.GetString(1)); }
                catch (InvalidProtocolBufferException) { continue; }
                if (e is RunStarted s) dirs[r.GetString(0)] = s.RunDir;
                else if (e is RunDirectoryChanged c) dirs[r.GetString(0)] = c.ToDir;
            }
        var snapshots = LastSnapshots(conn);
        return dirs.Where(kv => kv.Value == full).Select(kv => Summarize(conn, kv.Key, snapshots)).ToList();
    }

    /// <summary>The state of one stream (null when the journal holds no event of it).</summary>
    public RunSummary? Run(string persistenceId)
    {
        using var conn = Open(mustExist: false);
        if (conn == null || !TableExists(conn, "journal")) return null;
        var s = Summarize(conn, persistenceId, LastSnapshots(conn));
        return s.Events == 0 && s.LastSequenceNr == 0 ? null : s;
    }

    /// <summary>
    /// The events of one run stream with a sequence number above <paramref name="afterSequenceNr"/> (0 = all), oldest
    /// first (deleted rows and other serializers' events skipped). A missing SQLite file or journal table is an empty
    /// stream, unless <paramref name="requireTable"/> (then FileNotFoundException / <see cref="NoJournalTableException"/>).
    /// </summary>
    public IReadOnlyList<Entry> Events(string persistenceId, long afterSequenceNr = 0, bool requireTable = false)
    {
        using var conn = Open(mustExist: requireTable);
        if (conn == null) return [];
        if (!TableExists(conn, "journal"))
            return requireTable ? throw new NoJournalTableException(NoJournalTableMessage()) : [];
        var list = new List<Entry>();
        using var cmd = Command(conn, """
            SELECT sequence_number, manifest, message, created FROM journal
            WHERE persistence_id = @p AND identifier = @s AND NOT deleted AND sequence_number > @after ORDER BY sequence_number
            """, ("p", persistenceId), ("s", RunEventSerializerId), ("after", afterSequenceNr));
        using var r = cmd.ExecuteReader();
        while (r.Read())
            list.Add(new Entry(Convert.ToInt64(r.GetValue(0), CultureInfo.InvariantCulture), r.GetString(1),
                RunEventSerializer.Parse((byte[])r.GetValue(2), r.GetString(1)))
            {
                Created = r.IsDBNull(3) ? null : FromCreated(Convert.ToInt64(r.GetValue(3), CultureInfo.InvariantCulture)),
            });
        return list;
    }

    private RunSummary Summarize(DbConnection conn, string pid, Dictionary<string, long> snapshots)
    {
        var state = new RunState();
        bool readable = true, started = false;
        long last = 0, events = 0;
        string manifest = "";
        DateTime? created = null;
        using var cmd = Command(conn, """
            SELECT sequence_number, manifest, identifier, created, message, deleted FROM journal
            WHERE persistence_id = @p ORDER BY sequence_number
            """, ("p", pid));
        using var r = cmd.ExecuteReader();
        while (r.Read())
        {
            last = Convert.ToInt64(r.GetValue(0), CultureInfo.InvariantCulture);
            manifest = r.IsDBNull(1) ? "" : r.GetString(1);
            created = r.IsDBNull(3) ? null : FromCreated(Convert.ToInt64(r.GetValue(3), CultureInfo.InvariantCulture));
            if (Convert.ToBoolean(r.GetValue(5), CultureInfo.InvariantCulture)) continue;
            events++;
            if (!readable || Convert.ToInt32(r.GetValue(2), CultureInfo.InvariantCulture) != RunEventSerializerId) { readable = false; continue; }
            try
            {
                var e = RunEventSerializer.Parse((byte[])r.GetValue(4), manifest);
                started |= e is RunStarted;
                state.Apply(e);
            }
            catch (Exception ex) when (ex is InvalidProtocolBufferException or System.Runtime.Serialization.SerializationException) { readable = false; }
        }
        var isRun = readable && started;
        return new RunSummary(pid, isRun ? state.RunUuid : "", isRun ? state.RunId : "", isRun ? state.RunDirectory : "", isRun ? state.Host : "",
            isRun ? state.Phase : "", isRun ? state.Step : 0, isRun && state.Finished, last, events, manifest, created,
            snapshots.TryGetValue(pid, out var snap) ? snap : null);
    }

    private Dictionary<string, long> LastSnapshots(DbConnection conn)
    {
        var d = new Dictionary<string, long>(StringComparer.Ordinal);
        if (!TableExists(conn, "snapshot")) return d;
        using var cmd = Command(conn, "SELECT persistence_id, MAX(sequence_number) FROM snapshot GROUP BY persistence_id");
        using var r = cmd.ExecuteReader();
        while (r.Read()) d[r.GetString(0)] = Convert.ToInt64(r.GetValue(1), CultureInfo.InvariantCulture);
        return d;
    }

    // ---- connections ----

    /// <summary>
    /// A read-only connection; null for a SQLite file that does not exist when <paramref name="mustExist"/> is false
    /// (a run directory whose first start has not journaled anything yet). Throws FileNotFoundException when it must.
    /// </summary>
    private DbConnection? Open(bool mustExist)
    {
        if (_postgres != null)
        {
            var pg = new NpgsqlConnection(_postgres);
            try { pg.Open(); }
            catch (Exception e) when (e is NpgsqlException or InvalidOperationException or System.Net.Sockets.SocketException)
            {
                pg.Dispose();
                throw new IOException($"{Description}: cannot connect ({e.GetBaseException().Message}).", e);
            }
            return pg;
        }
        if (!File.Exists(_sqliteFile))
        {
            if (!mustExist) return null;
            throw new FileNotFoundException($"Journal '{_sqliteFile}' does not exist (a run directory holds {RunJournal.DefaultFile} once `ect train` has started there).", _sqliteFile);
        }
        try { return OpenSqlite("ReadOnly"); }
        catch (SqliteException e) when (e.SqliteErrorCode == 8)
        {
            // SQLITE_READONLY: the writer was killed with its write-ahead log not yet checkpointed, and a read-only
            // connection may not replay it. A read-write connection recovers the log exactly as a restart would.
            return OpenSqlite("ReadWrite");
        }
    }

    private SqliteConnection OpenSqlite(string mode)
    {
        var c = new SqliteConnection($"Data Source={_sqliteFile};Mode={mode};Pooling=False");
        try
        {
            c.Open();
            // The first statement is where a file that is not SQLite at all says so.
            using var probe = c.CreateCommand();
            probe.CommandText = "SELECT COUNT(*) FROM sqlite_master";
            probe.ExecuteScalar();
            return c;
        }
        catch (SqliteException e) when (e.SqliteErrorCode is 26 or 11)
        {
            c.Dispose();
            throw new InvalidDataException($"'{_sqliteFile}' is not a SQLite journal ({e.Message}).", e);
        }
        catch { c.Dispose(); throw; }
    }

    private bool TableExists(DbConnection conn, string name)
    {
        using var cmd = _postgres != null
            ? Command(conn, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = @n", ("n", name))
            : Command(conn, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = @n", ("n", name));
        return Convert.ToInt64(cmd.ExecuteScalar(), CultureInfo.InvariantCulture) > 0;
    }

    /// <summary>Throws InvalidDataException when the journal (it exists) has no `journal` table.</summary>
    public void RequireJournalTable()
    {
        using var conn = Open(mustExist: true)!;
        if (!TableExists(conn, "journal")) throw new InvalidDataException(NoJournalTableMessage());
    }

    private string NoJournalTableMessage() => _sqliteFile != null
        ? $"'{_sqliteFile}' has no `journal` table: not an Akka.Persistence.Sql journal (default table mapping)?"
        : $"{Description} has no `journal` table yet (no run has started on it).";

    private static DbCommand Command(DbConnection conn, string sql, params (string Name, object Value)[] parameters)
    {
        var cmd = conn.CreateCommand();
        cmd.CommandText = sql;
        foreach (var (n, v) in parameters)
        {
            var p = cmd.CreateParameter();
            p.ParameterName = n;
            p.Value = v;
            cmd.Parameters.Add(p);
        }
        return cmd;
    }

    /// <summary>Akka.Persistence.Sql stores `created` as DateTime ticks (UTC); older plugins used Unix milliseconds.</summary>
    public static DateTime? FromCreated(long v) =>
        v > 100_000_000_000_000_000L && v <= DateTime.MaxValue.Ticks ? new DateTime(v, DateTimeKind.Utc)
        : v > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(v).UtcDateTime
        : null;
}
