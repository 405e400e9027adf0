using Ect.Actors.Checkpoints;
using System.Globalization;
using System.Text.RegularExpressions;
using Akka.Configuration;
using Ect.Actors.Configuration;
using Ect.Actors.Run;
using Microsoft.Data.Sqlite;

namespace Ect.Actors.Persistence;

/// <summary>
/// Checks the run's SQLite journal before the actor system starts. A damaged journal.db used to cost 30 s of
/// recovery retries, 60 stack traces and "Recovery timed out", never naming the file; here `PRAGMA quick_check` and
/// a count of the journal's rows take milliseconds, and a damaged file ends `ect train` with exit code 1 and one
/// message naming it, SQLite's error and the way out: `ect train --rebuild-journal` (<see cref="JournalRebuilder"/>)
/// or a new run directory. A journal that holds no run while checkpoint files exist (deleted, or emptied by a
/// failed start) is refused the same way: starting it would silently begin the run again from step 0.
/// PostgreSQL journals are not checked here (their server reports its own errors).
/// </summary>
public static partial class JournalPreflight
{
    [GeneratedRegex(@"^ckpt-(\d+)\.ckpt$")] private static partial Regex CheckpointName();

    /// <summary>The SQLite journal file of a run, or null when the run's journal is PostgreSQL.</summary>
    public static string? JournalPath(Config ect, string runDir) =>
        ect.GetString("ect.persistence.provider", "sqlite") == "sqlite"
            ? Path.GetFullPath(Path.Combine(runDir, ect.GetString("ect.persistence.sqlite-file", "journal.db")))
            : null;

    /// <summary>The finished checkpoint files of a run (checkpoints/ckpt-STEP.ckpt), by step.</summary>
    public static List<(string Path, long Step)> CheckpointFiles(string runDir)
    {
        var dir = Path.Combine(runDir, Checkpointer.Folder);
        if (!Directory.Exists(dir)) return new();
        try
        {
            return Directory.EnumerateFiles(dir, "ckpt-*.ckpt")
                .Select(f => (Path: f, M: CheckpointName().Match(Path.GetFileName(f))))
                .Where(x => x.M.Success && long.TryParse(x.M.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out _))
                .Select(x => (x.Path, long.Parse(x.M.Groups[1].Value, CultureInfo.InvariantCulture)))
                .OrderBy(x => x.Item2).ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return new(); }
    }

    /// <summary>What the journal file holds: a problem (null when readable and intact) and its row count.</summary>
    public sealed record Health(string? Problem, long Rows);

    /// <summary>Opens <paramref name="path"/> (no creation), runs PRAGMA quick_check and counts the journal and snapshot rows.</summary>
    public static Health Inspect(string path)
    {
        if (!File.Exists(path)) return new Health(null, 0);
        try
        {
            var cs = new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadWrite, Pooling = false, DefaultTimeout = 5 };
            using var conn = new SqliteConnection(cs.ToString());
            conn.Open();
            var report = new List<string>();
            using (var cmd = conn.CreateCommand())
            {
                cmd.CommandText = "PRAGMA quick_check(5)";
                using var r = cmd.ExecuteReader();
                while (r.Read()) report.Add(r.GetString(0));
            }
            if (report is not ["ok"])
                return new Health($"SQLite's integrity check (PRAGMA quick_check) reports: {string.Join("; ", report)}", 0);
            long rows = 0;
            foreach (var table in new[] { "journal", "snapshot" })
            {
                using var exists = conn.CreateCommand();
                exists.CommandText = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = $t";
                exists.Parameters.AddWithValue("$t", table);
                if ((long)exists.ExecuteScalar()! == 0) continue;
                using var count = conn.CreateCommand();
                count.CommandText = $"SELECT count(*) FROM \"{table}\"";
                rows += (long)count.ExecuteScalar()!;
            }
            return new Health(null, rows);
        }
        catch (SqliteException e)
        {
            return new Health(e.Message.TrimEnd('.'), 0);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new Health($"it cannot be read ({IoError.Describe(e)})", 0);
        }
    }

    /// <summary>
    /// Null when the run may start (its journal is intact, or was just rebuilt); otherwise the outcome `ect train`
    /// ends with: exit 1 for a damaged journal, exit 2 for a --rebuild-journal that has nothing to do.
    /// </summary>
    public static async Task<RunOutcome?> CheckAsync(RunSettings settings, string runDir, bool rebuild, TextWriter log)
    {
        var path = JournalPath(settings.Config, runDir);
        if (path is null)
            return rebuild ? new RunOutcome(2, "--rebuild-journal rebuilds the SQLite journal only (ect.persistence.provider = postgresql here): nothing was changed.", 0) : null;
        var checkpoints = CheckpointFiles(runDir);
        var health = Inspect(path);
        var problem = health.Problem;
        if (problem is null && health.Rows == 0 && checkpoints.Count > 0)
            problem = File.Exists(path)
                ? $"it holds no run, but {Path.Combine(runDir, Checkpointer.Folder)} holds {checkpoints.Count} checkpoint file(s) (up to step {checkpoints[^1].Step})"
                : $"it does not exist, but {Path.Combine(runDir, Checkpointer.Folder)} holds {checkpoints.Count} checkpoint file(s) (up to step {checkpoints[^1].Step})";
        if (!rebuild)
            return problem is null ? null : new RunOutcome(1, Explain(path, runDir, problem, checkpoints), 0);
        if (problem is null)
            return new RunOutcome(2, health.Rows > 0
                ? $"--rebuild-journal: {path} is intact (PRAGMA quick_check ok, {health.Rows} rows); it replaces only a damaged or missing journal, so nothing was changed."
                : $"--rebuild-journal: {runDir} holds no checkpoint file to rebuild a journal from; nothing was changed (`ect train` without it starts the run).", 0);
        if (checkpoints.Count == 0)
            return new RunOutcome(1, Explain(path, runDir, problem, checkpoints), 0);
        return await JournalRebuilder.RebuildAsync(settings, runDir, path, checkpoints, problem, log);
    }

    private static string Explain(string path, string runDir, string problem, List<(string Path, long Step)> checkpoints)
    {
        var name = Path.GetFileName(path);
        var head = $"The run's journal {path} cannot be used: {problem}.";
        if (checkpoints.Count == 0)
            return head + $" There is no checkpoint file to rebuild it from ({Path.Combine(runDir, Checkpointer.Folder)} holds none): " +
                   $"move {name} away to start this run again from step 0, or start a new run with another --run-dir.";
        return head + $" The checkpoint files are not affected ({checkpoints.Count} in {Path.Combine(runDir, Checkpointer.Folder)}, the last at step {checkpoints[^1].Step}). " +
               $"To resume from them, rebuild the journal: `ect train --run-dir {runDir} --rebuild-journal`, with the run's own --config and --set " +
               $"(the damaged file is kept beside it as {name}.damaged-TIME). Or start a new run with another --run-dir.";
    }
}
