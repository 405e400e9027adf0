using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Ect.Actors.Configuration;
using Ect.Actors.Daemon;
using Ect.Actors.Persistence;
using Ect.Actors.Persistence.Events;
using Google.Protobuf;
using Microsoft.Data.Sqlite;

namespace Ect.Actors.Cli;

/// <summary>
/// `ect history RUN_DIR [--follow] [--json]`: every event of a run's journal (SQLite, read-only, through
/// <see cref="RunJournal"/>), oldest first, with its sequence number, the time the journal stored it, the step and
/// what happened: the configuration the run started with (keys that differ from the defaults), phase and stage
/// changes (the schedule's or a user's), configuration changes with who made them, checkpoints with their SHA-256,
/// evaluations with their metrics, pauses, interruptions, rollbacks, restarts, extensions and the end.
/// --follow keeps printing new events until the run's daemon has exited; --json prints one JSON object per line.
/// </summary>
public sealed class HistoryVerb : ICliVerb
{
    public int Order => 55;

    public Command Build()
    {
        var runDir = new Argument<string>("RUN_DIR") { Description = "A run directory (holds journal.db) or a SQLite journal file." };
        var follow = new Option<bool>("--follow", "-f") { Description = "Keep printing events as they are journaled, until the run's daemon exits (Ctrl-C stops earlier)." };
        var json = new Option<bool>("--json") { Description = "One JSON object per event and line: seq, time, step, event, summary, data (the event's fields)." };
        var cmd = new Command("history", "Every event of a run's journal: step, time, what happened (pauses, stages, config changes, checkpoints, evaluations, rollbacks, restarts).");
        cmd.Arguments.Add(runDir);
        cmd.Options.Add(follow);
        cmd.Options.Add(json);
        cmd.SetAction((r, token) => Task.FromResult(Run(r.GetValue(runDir)!, r.GetValue(follow), r.GetValue(json), Console.Out, token)));
        return cmd;
    }

    /// <summary>Prints the history of <paramref name="path"/>; returns the exit code (0, or 1 when there is no readable journal).</summary>
    public static int Run(string path, bool follow, bool json, TextWriter output, CancellationToken cancel = default)
    {
        var (runDir, file) = Directory.Exists(path) ? (path, RunsVerb.DefaultJournalFile) : (Path.GetDirectoryName(Path.GetFullPath(path))!, Path.GetFileName(path));
        long last = 0;
        var context = new Context();
        bool waiting = false;
        try
        {
            while (true)
            {
                if (follow && !File.Exists(Path.Combine(runDir, file)))
                {
                    // A run about to start (tail -F): wait for its journal.
                    if (!waiting) Console.Error.WriteLine($"ect history: waiting for {Path.Combine(runDir, file)} (Ctrl-C stops)");
                    waiting = true;
                    if (cancel.WaitHandle.WaitOne(500)) return 0;
                    continue;
                }
                IReadOnlyList<JournalCatalog.Entry> entries;
                try { entries = RunJournal.ReadAfter(runDir, last, file); }
                catch (Exception e) when (follow && (e is JournalCatalog.NoJournalTableException || e is SqliteException { SqliteErrorCode: 5 or 6 }))
                {
                    // The daemon has created journal.db but not yet its tables, or holds it for that (SQLITE_BUSY /
                    // SQLITE_LOCKED): the run is still starting. (A follow started before the run failed so in CI.)
                    if (cancel.WaitHandle.WaitOne(200)) return 0;
                    continue;
                }
                foreach (var e in entries)
                {
                    output.WriteLine(json ? Json(e, context) : Line(e, context));
                    last = e.SequenceNr;
                }
                output.Flush();
                if (!follow || cancel.IsCancellationRequested) return 0;
                if (entries.Count == 0 && !DaemonRunning(runDir))
                {
                    // One more read: events journaled between the last read and the daemon's exit.
                    foreach (var e in RunJournal.ReadAfter(runDir, last, file)) output.WriteLine(json ? Json(e, context) : Line(e, context));
                    output.Flush();
                    return 0;
                }
                if (cancel.WaitHandle.WaitOne(500)) return 0;
            }
        }
        catch (Exception e) when (e is IOException or InvalidDataException or SqliteException or System.Runtime.Serialization.SerializationException or InvalidProtocolBufferException)
        {
            Console.Error.WriteLine($"ect history: {e.Message}");
            return 1;
        }
    }

    /// <summary>True while a daemon holds RUN_DIR/run.lock (a file left by a killed daemon is unlocked: not running).</summary>
    private static bool DaemonRunning(string runDir)
    {
        var lockPath = Path.Combine(runDir, RunLock.FileName);
        if (!File.Exists(lockPath)) return false;
        try
        {
            using var probe = new FileStream(lockPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            // .NET on Unix takes a shared flock for this read and fails only on the daemon's exclusive one.
            return false;
        }
        catch (IOException) { return true; }
        catch (UnauthorizedAccessException) { return true; }
    }

    /// <summary>What earlier events said, for the summaries of later ones (stage by the schedule or a user).</summary>
    private sealed class Context
    {
        public Akka.Configuration.Config? Defaults;
    }

    private static string Time(JournalCatalog.Entry e) =>
        e.Created?.ToString("yyyy-MM-dd HH:mm:ss.fff", CultureInfo.InvariantCulture) ?? "-";

    private static string Line(JournalCatalog.Entry e, Context c)
    {
        var (step, kind, text) = Describe(e.Event, c);
        return string.Create(CultureInfo.InvariantCulture, $"{e.SequenceNr,6}  {Time(e)}  step {(step?.ToString(CultureInfo.InvariantCulture) ?? "-"),-7} {kind,-20} {text}");
    }

    private static string Json(JournalCatalog.Entry e, Context c)
    {
        var (step, kind, text) = Describe(e.Event, c);
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            w.WriteNumber("seq", e.SequenceNr);
            if (e.Created is { } t) w.WriteString("time", t.ToString("O", CultureInfo.InvariantCulture)); else w.WriteNull("time");
            if (step is { } s) w.WriteNumber("step", s); else w.WriteNull("step");
            w.WriteString("event", e.Event.Descriptor.Name);
            w.WriteString("manifest", e.Manifest);
            w.WriteString("kind", kind);
            w.WriteString("summary", text);
            w.WritePropertyName("data");
            w.WriteRawValue(Formatter.Format(e.Event));
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    private static readonly JsonFormatter Formatter = new(JsonFormatter.Settings.Default.WithFormatDefaultValues(true));

    /// <summary>Who made a change, from its idempotency key (ect train's own keys carry a prefix; ect ctl's are the client's).</summary>
    private static string Who(string key) =>
        key.StartsWith("restart-", StringComparison.Ordinal) ? "ect train (restart)"
        : key.StartsWith("extend-", StringComparison.Ordinal) ? "ect train (extension of a finished run)"
        : key.Length == 0 ? "the run"
        : $"ect ctl (command {key})";

    private static string Short(string sha) => sha.Length > 16 ? sha[..16] : sha;

    /// <summary>The step (when the event has one), a short kind and a one-line summary.</summary>
    public static (long? Step, string Kind, string Text) Describe(IMessage m, Akka.Configuration.Config? defaults = null) =>
        Describe(m, new Context { Defaults = defaults });

    private static (long? Step, string Kind, string Text) Describe(IMessage m, Context c)
    {
        var inv = CultureInfo.InvariantCulture;
        switch (m)
        {
            case RunStarted s:
                return (null, "started", $"run '{s.RunId}' (ect {(s.ProgramVersion.Length > 0 ? s.ProgramVersion : "?")}) at " +
                    $"{DateTimeOffset.FromUnixTimeMilliseconds(s.StartedUnixMs).UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", inv)} UTC; " +
                    $"configuration (differs from the defaults): {ConfigDiff(s.ConfigHocon, c)}");
            case PhaseChanged p:
                return (p.Step, "phase", $"phase {p.Phase}");
            case StageAdvanced s:
                return (s.Step, "stage", s.ByUser ? $"stage {s.Stage}, set by {Who(s.IdempotencyKey)}" : $"stage {s.Stage} (schedule)");
            case CheckpointCommitted k:
                return (k.Step, "checkpoint", string.Create(inv,
                    $"{k.Path} sha256 {k.Sha256} ({k.Phase}, stage {k.Stage}, {k.Kimg:0.###} kimg{(k.Milestone ? ", milestone" : "")})"));
            case EvaluationRecorded ev:
                return (ev.Step, "evaluation", $"{ev.Evaluator}: " +
                    (ev.Metrics.Count > 0 ? string.Join(", ", ev.Metrics.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => string.Create(inv, $"{kv.Key} = {kv.Value:0.####}"))) : "no metrics") +
                    (ev.Files.Count > 0 ? $"; files {string.Join(", ", ev.Files)}" : ""));
            case ConfigChanged ch:
                return (ch.Step, "config", $"{ch.Key} = {ch.Value}, by {Who(ch.IdempotencyKey)}");
            case RunPaused p:
                return (p.Step, "paused", $"paused by {Who(p.IdempotencyKey)}");
            case RunResumed r:
                return (r.Step, "resumed", $"resumed by {Who(r.IdempotencyKey)}");
            case RunInterrupted i:
                return (i.Step, "interrupted", $"stopped: {i.Reason} (a restart continues from the last checkpoint)");
            case RolledBack r:
                return (r.FromStep, "rollback", $"rolled back from step {r.FromStep} to step {r.ToStep}: {r.Reason}");
            case RunFinished f:
                return (f.Step, "finished", string.Create(inv, $"finished, {f.Kimg:0.###} kimg; weights sha256 {Short(f.WeightsSha256)}..., EMA sha256 {Short(f.EmaSha256)}..."));
            case WorldSizeChanged w:
                return (w.Step, "ranks", $"trains on {w.ToSize} rank(s) (mpirun -np {w.ToSize}) from here, before on {w.FromSize}" + (w.Step > 0 ? ": from the last checkpoint, not bit-identical with a run that kept its ranks" : ""));
            case RanksDiverged d:
                return (d.Step, "diverged", $"stopped: {d.Reason}");
            case RunExtended x:
                return (x.Step, "extended", $"finished run lengthened from {x.PreviousTotalSteps} to {x.TotalSteps} steps by ect train");
            case CommandApplied a:
                return (null, "command", $"{Who(a.IdempotencyKey)}: {(a.Accepted ? "accepted" : "refused")}: {a.Message}");
            default:
                return (null, m.Descriptor.Name, m.ToString());
        }
    }

    private static string ConfigDiff(string hocon, Context c)
    {
        try
        {
            c.Defaults ??= EctConfiguration.Defaults();
            var run = EctConfiguration.FromJournal(hocon);
            var diffs = EctConfiguration.LeafKeys(run)
                .Where(k => c.Defaults.GetValue(k) is not { } d || EctConfiguration.Inline(d) != EctConfiguration.Inline(run.GetValue(k)))
                .Select(k => $"{k} = {EctConfiguration.Inline(run.GetValue(k))}")
                .ToList();
            return diffs.Count == 0 ? "none" : string.Join("; ", diffs);
        }
        catch (Exception e) { return $"(unreadable: {e.Message})"; }
    }
}
