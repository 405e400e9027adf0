using System.Globalization;
using System.Text.Json;
using Ect.Actors.Run;
using Ect.Compute.IO;

namespace Ect.Actors.Output;

/// <summary>
/// RUN_DIR/stats.jsonl: one JSON line per step. Written from its own thread (the trainer only enqueues).
/// On resume, lines past the resume step are dropped first: those steps are recomputed (same values).
/// </summary>
public sealed class StatsFile : IDisposable
{
    public const string Name = "stats.jsonl";
    private readonly StreamWriter _w;

    public StatsFile(string runDir, long keepUpToStep)
    {
        var path = Path.Combine(runDir, Name);
        Truncate(path, keepUpToStep);
        _w = new StreamWriter(new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read));
    }

    public static void Truncate(string path, long keepUpToStep)
    {
        if (!File.Exists(path)) return;
        var keep = File.ReadLines(path).Where(l =>
        {
            try
            {
                using var doc = JsonDocument.Parse(l);
                return doc.RootElement.GetProperty("step").GetInt64() <= keepUpToStep;
            }
            catch (Exception e) when (IsUnreadableLine(e)) { return false; } // a line cut by a kill, or not ours
        }).ToList();
        File.WriteAllLines(path + ".tmp", keep);
        AtomicFile.Commit(path + ".tmp", path);
    }

    private string? _failure;

    /// <summary>Why the file stopped taking lines (a full disk...), or null while it writes.</summary>
    public string? Failure => _failure;

    /// <summary>Called once, with the reason, when a write fails (then lines are dropped: the run goes on).</summary>
    public Action<string>? OnFailure { get; init; }

    /// <summary>
    /// Appends a line. Never throws: it runs on the stats writer's own thread, where an exception would end the
    /// process. stats.jsonl is a by-product (a resumed run rewrites its lines from the resume step); a full disk
    /// also fails the next checkpoint, and that ends the run cleanly.
    /// </summary>
    public void Write(TrainingProgress s)
    {
        if (_failure is not null) return;
        try { WriteLine(s); }
        catch (Exception e) { Fail(e); }
    }

    private void Fail(Exception e)
    {
        if (_failure is not null) return;
        _failure = $"{Name} stops taking lines: {Run.IoError.Describe(e)}";
        try { OnFailure?.Invoke(_failure); } catch { /* a reporter must not end the process either */ }
    }

    private void WriteLine(TrainingProgress s)
    {
        _w.Write(string.Create(CultureInfo.InvariantCulture,
            $"{{\"step\":{s.Step},\"kimg\":{s.Kimg:R},\"loss\":{Num(s.Loss)},\"phase\":\"{s.Phase}\",\"stage\":{s.Stage},\"lr\":{s.LearningRate:R},\"images_per_s\":{s.ImagesPerSecond:F2},\"step_s\":{s.StepSeconds:F4},\"time\":\"{s.Time:O}\"}}\n"));
        // Every line goes to the OS at once (a write, no fsync: one system call per training step, nothing beside a
        // step's milliseconds). Until session 11 lines were flushed every 2 s: a trainer killed right after its last
        // checkpoint (its node SIGKILLed, so it ended itself) lost its last ~10 lines, and as the run had finished,
        // no resume ever rewrote them (seen in scripts/two-host-sweep.sh: stats.jsonl ended at step 289 of 300).
        _w.Flush();
    }

    private static string Num(double v) => double.IsFinite(v) ? v.ToString("R", CultureInfo.InvariantCulture) : "null";

    /// <summary>Flushes and closes; never throws (see <see cref="Write"/>).</summary>
    public void Dispose()
    {
        try { _w.Dispose(); }
        catch (Exception e)
        {
            Fail(e);
            try { _w.BaseStream.Dispose(); } catch { /* the buffered lines are lost; the descriptor is closed */ }
        }
    }

    /// <summary>
    /// What reading one line can throw when the line is not a stats line: torn by a kill (JsonException), or valid
    /// JSON of another shape -- a hand edit, another tool's file (no "step": KeyNotFoundException; an array or a
    /// string where an object or a number belongs: InvalidOperationException; 1.5 or 1e30 as the step:
    /// FormatException). Such lines are skipped; none may stop a resume or a plot.
    /// </summary>
    private static bool IsUnreadableLine(Exception e) =>
        e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException;

    /// <summary>Reads (step, loss, phase) back for plots.</summary>
    public static List<(long Step, double Loss, string Phase)> Read(string runDir)
    {
        var path = Path.Combine(runDir, Name);
        var result = new List<(long, double, string)>();
        if (!File.Exists(path)) return result;
        using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var r = new StreamReader(f);
        while (r.ReadLine() is { } line)
        {
            try
            {
                using var doc = JsonDocument.Parse(line);
                var e = doc.RootElement;
                var loss = e.GetProperty("loss");
                if (loss.ValueKind == JsonValueKind.Number)
                    result.Add((e.GetProperty("step").GetInt64(), loss.GetDouble(), e.GetProperty("phase").GetString() ?? ""));
            }
            catch (Exception ex) when (IsUnreadableLine(ex)) { }
        }
        return result;
    }
}
