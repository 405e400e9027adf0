using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Ect.Actors.Output;

/// <summary>One metric value of one evaluation (one line of RUN_DIR/metrics.jsonl).</summary>
/// <param name="Metric">e.g. "fd-resnet18-1step" (FD-ResNet18, never FID).</param>
/// <param name="Kimg">Thousands of training images at <paramref name="Step"/>; NaN when unknown (written as null).</param>
public sealed record MetricRecord(long Step, double Kimg, string Metric, int SamplingSteps, double Value, int Count,
    int ReferenceCount, double ElapsedSeconds);

/// <summary>
/// RUN_DIR/metrics.jsonl: one JSON line per metric value, appended by the metric evaluators; fd.png is drawn from it.
/// A resumed run evaluates some steps again and appends them again (same seed and weights, so the same values):
/// <see cref="Read"/> keeps the last line per (metric, step). Lines cut by a kill are skipped.
/// </summary>
public static class MetricsFile
{
    public const string Name = "metrics.jsonl";
    private static readonly object s_lock = new();

    public static void Append(string runDir, MetricRecord r)
    {
        var line = new StringBuilder();
        line.Append(CultureInfo.InvariantCulture, $"{{\"step\":{r.Step},\"kimg\":{Num(r.Kimg)},\"metric\":{JsonSerializer.Serialize(r.Metric)},");
        line.Append(CultureInfo.InvariantCulture, $"\"sampling_steps\":{r.SamplingSteps},\"value\":{Num(r.Value)},\"count\":{r.Count},");
        line.Append(CultureInfo.InvariantCulture, $"\"reference_count\":{r.ReferenceCount},\"elapsed_s\":{r.ElapsedSeconds:F3}}}\n");
        lock (s_lock) File.AppendAllText(Path.Combine(runDir, Name), line.ToString());
    }

    private static string Num(double v) => double.IsFinite(v) ? v.ToString("R", CultureInfo.InvariantCulture) : "null";

    /// <summary>The records in file order of first appearance, the last line winning per (metric, step).</summary>
    public static List<MetricRecord> Read(string runDir)
    {
        var path = Path.Combine(runDir, Name);
        var result = new List<MetricRecord>();
        var index = new Dictionary<(string, long), int>();
        if (!File.Exists(path)) return result;
        using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var reader = new StreamReader(f);
        while (reader.ReadLine() is { } line)
        {
            MetricRecord r;
            try
            {
                var e = JsonDocument.Parse(line).RootElement;
                double D(string k) => e.TryGetProperty(k, out var p) && p.ValueKind == JsonValueKind.Number ? p.GetDouble() : double.NaN;
                r = new MetricRecord(e.GetProperty("step").GetInt64(), D("kimg"), e.GetProperty("metric").GetString() ?? "",
                    e.GetProperty("sampling_steps").GetInt32(), D("value"), e.GetProperty("count").GetInt32(),
                    e.GetProperty("reference_count").GetInt32(), D("elapsed_s"));
            }
            catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
            {
                continue; // a line cut by a kill, or written by hand
            }
            if (index.TryGetValue((r.Metric, r.Step), out var at)) result[at] = r;
            else { index[(r.Metric, r.Step)] = result.Count; result.Add(r); }
        }
        return result;
    }
}
