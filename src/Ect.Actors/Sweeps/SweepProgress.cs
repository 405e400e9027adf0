using System.Globalization;
using System.Text.Json;
using Ect.Actors.Output;

namespace Ect.Actors.Sweeps;

/// <summary>
/// A run's live progress, for the sweep tables (`ect sweep results` on one machine, `ect sweep status` of a cluster):
/// the last step in its stats.jsonl and, while it trains, the time left for its remaining steps (pretrain + tuning)
/// at its recent pace. The journal only knows committed checkpoints (every 250 steps in the recipe sweeps), so a
/// table read from it alone showed a run an hour into its training at step 0.
/// </summary>
public static class SweepProgress
{
    /// <summary>Bytes read from the end of stats.jsonl: ~20 lines of ~200 bytes, enough for a median pace.</summary>
    private const int TailBytes = 4096;

    /// <summary>What the last lines of a run's stats.jsonl say: its last step, when it was logged, the recent pace.</summary>
    public sealed record Live(long Step, DateTimeOffset? Time, double? SecondsPerStep);

    /// <summary>
    /// The last logged step, its time and the median step time of the file's last lines (a median: one spiked step,
    /// or the first step after a resume, which pays for loading, would swing a single step's estimate). Null where
    /// the file is missing, unreadable or not as the daemon writes it: the table then shows what the journal says.
    /// </summary>
    public static Live? Read(string runDir)
    {
        var path = Path.Combine(runDir, StatsFile.Name);
        try
        {
            if (!File.Exists(path)) return null;
            string tail;
            using (var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
            {
                bool cut = f.Length > TailBytes;
                f.Seek(Math.Max(0, f.Length - TailBytes), SeekOrigin.Begin);
                tail = new StreamReader(f).ReadToEnd();
                // The first line of a cut tail is a fragment (the last may be one the writer has not finished: it
                // does not parse and is skipped).
                if (cut && tail.IndexOf('\n') is var nl and >= 0) tail = tail[(nl + 1)..];
            }
            Live? last = null;
            var paces = new List<double>();
            foreach (var line in tail.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                if (Parse(line) is not { } row) continue;
                last = row;
                if (row.SecondsPerStep is > 0 and < 1e6) paces.Add(row.SecondsPerStep.Value);
            }
            if (last is null) return null;
            paces.Sort();
            return last with { SecondsPerStep = paces.Count == 0 ? null : paces[paces.Count / 2] };
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
    }

    /// <summary>
    /// Whether the run is training now, judged from outside without touching its locks (a probe of run.lock could make
    /// a daemon starting in that instant refuse the directory): its last step was logged within ten step times (at
    /// least two minutes) of <paramref name="now"/>. A run in its final evaluation, or paused, reads as not training.
    /// </summary>
    public static bool IsTraining(Live live, DateTimeOffset now) =>
        live.Time is { } t && now - t < TimeSpan.FromSeconds(Math.Max(120, 10 * (live.SecondsPerStep ?? 0)));

    /// <summary>The time its remaining steps (pretrain + tuning, from the run's config in the spec) take at its recent pace.</summary>
    public static TimeSpan? Left(SweepSpec spec, SweepRun run, Live live)
    {
        if (live.SecondsPerStep is not { } pace) return null;
        try
        {
            var config = spec.ConfigOf(run);
            long total = config.GetLong("ect.pretrain.steps", 0) + config.GetLong("ect.tuning.steps", 0);
            return TimeSpan.FromSeconds(Math.Max(0, total - live.Step) * pace);
        }
        catch (Exception e) when (e is Configuration.ConfigurationException or Akka.Configuration.ConfigurationException or FormatException
                                      or OverflowException or ArgumentException)
        { return null; }
    }

    /// <summary>"m:ss" under an hour, "h:mm:ss" from one; "-" for none.</summary>
    public static string Format(TimeSpan? left) =>
        left is not { } t ? "-" : t.ToString(t.TotalHours >= 1 ? @"h\:mm\:ss" : @"m\:ss", CultureInfo.InvariantCulture);

    private static Live? Parse(string line)
    {
        try
        {
            using var doc = JsonDocument.Parse(line);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("step", out var s)
                || s.ValueKind != JsonValueKind.Number || !s.TryGetInt64(out var step) || step < 0)
                return null;
            double? seconds = root.TryGetProperty("step_s", out var t) && t.ValueKind == JsonValueKind.Number ? t.GetDouble() : null;
            DateTimeOffset? time = root.TryGetProperty("time", out var w) && w.ValueKind == JsonValueKind.String
                && DateTimeOffset.TryParse(w.GetString(), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var parsed) ? parsed : null;
            return new Live(step, time, seconds);
        }
        catch (Exception e) when (e is JsonException or FormatException) { return null; }
    }
}
