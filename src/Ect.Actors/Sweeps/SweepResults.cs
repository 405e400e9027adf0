using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Ect.Actors.Output;
using Ect.Actors.Persistence;
using Ect.Actors.Persistence.Events;
using ScottPlot;

namespace Ect.Actors.Sweeps;

/// <summary>What one run of a sweep has reached, read from its run directory (journal, metrics.jsonl, sweep-run.json).</summary>
public sealed record SweepRunResult(
    [property: JsonPropertyName("run")] string Run,
    [property: JsonPropertyName("overlay")] IReadOnlyDictionary<string, string> Overlay,
    [property: JsonPropertyName("state")] string State,
    [property: JsonPropertyName("step")] long Step,
    [property: JsonPropertyName("images")] double Images,
    [property: JsonPropertyName("cpu_seconds")] double? CpuSeconds,
    [property: JsonPropertyName("metric")] double? Metric,
    [property: JsonPropertyName("metrics")] IReadOnlyDictionary<string, double> Metrics);

/// <summary>
/// The table of a sweep (every run's state, step, images, CPU time, last value of every metric) and its picture: the
/// sweep's metric against compute (images seen), on log-log axes, with the fitted power law and the best run marked.
/// Read from the run root only, so it can be made at any time, during or after the sweep.
/// </summary>
public static class SweepResults
{
    public const string TableFile = "sweep-results.json";
    public const string PlotFile = "sweep-results.png";

    public static IReadOnlyList<SweepRunResult> Read(SweepSpec spec, string runRoot) =>
        spec.Runs.Select(r => ReadRun(spec, r, Path.Combine(runRoot, r.Id))).ToList();

    private static SweepRunResult ReadRun(SweepSpec spec, SweepRun run, string dir)
    {
        var overlay = run.Overlay.ToDictionary(kv => kv.Key, kv => kv.Value);
        if (!Directory.Exists(dir)) return new(run.Id, overlay, "pending", 0, 0, null, null, new Dictionary<string, double>());
        string state = "started";
        long step = 0;
        try
        {
            var journal = RunJournal.Read(dir);
            if (RunJournal.Events<RunFinished>(journal).LastOrDefault() is { } f) { state = "finished"; step = f.Step; }
            else if (RunJournal.Events<CheckpointCommitted>(journal).LastOrDefault() is { } c) step = c.Step;
        }
        catch (Exception e) when (e is IOException or Microsoft.Data.Sqlite.SqliteException) { /* not started yet */ }
        var record = SweepRunRecord.Read(dir);
        if (state != "finished" && record?.LastExitCode is { } code && code != 0) state = $"failed (exit {code})";
        var metrics = MetricsFile.Read(dir).Where(m => double.IsFinite(m.Value))
            .GroupBy(m => m.Metric).ToDictionary(g => g.Key, g => g.OrderBy(m => m.Step).Last());
        double images = metrics.Values.Select(m => m.Kimg * 1000).DefaultIfEmpty(0).Max();
        return new(run.Id, overlay, state, step, images, record?.CpuSeconds,
            metrics.TryGetValue(spec.Metric, out var mine) ? mine.Value : null,
            metrics.ToDictionary(kv => kv.Key, kv => kv.Value.Value));
    }

    /// <summary>The best run on the sweep's metric among those that have it (finished or not), or null.</summary>
    public static SweepRunResult? Best(SweepSpec spec, IEnumerable<SweepRunResult> results)
    {
        var with = results.Where(r => r.Metric is not null).ToList();
        if (with.Count == 0) return null;
        return spec.Minimize ? with.MinBy(r => r.Metric) : with.MaxBy(r => r.Metric);
    }

    /// <summary>Writes RUN_ROOT/sweep-results.json (and .png when two runs have the metric at different computes); returns the paths.</summary>
    public static IReadOnlyList<string> Write(SweepSpec spec, string runRoot, IReadOnlyList<SweepRunResult> results)
    {
        var written = new List<string>();
        var json = Path.Combine(runRoot, TableFile);
        var doc = new
        {
            sweep = spec.Name, spec = spec.SpecPath, metric = spec.Metric, goal = spec.Minimize ? "minimize" : "maximize",
            best = Best(spec, results)?.Run,
            fit = Fit(results) is { } fit ? new { a = fit.A, b = fit.B, r2 = fit.R2, points = fit.Points } : null,
            runs = results,
        };
        Ect.Compute.IO.AtomicFile.Write(json, s => JsonSerializer.Serialize(s, doc, new JsonSerializerOptions { WriteIndented = true }));
        written.Add(json);
        if (Plot(spec, results) is { } plot)
        {
            var png = Path.Combine(runRoot, PlotFile);
            PlotFont.SaveAtomically(plot, png);
            written.Add(png);
        }
        return written;
    }

    /// <summary>The power law of the metric against images seen, over the runs that have both.</summary>
    public static PowerLawFit? Fit(IEnumerable<SweepRunResult> results) =>
        PowerLawFit.Fit(results.Where(r => r.Metric is not null && r.Images > 0).Select(r => (r.Images, r.Metric!.Value)));

    private static Plot? Plot(SweepSpec spec, IReadOnlyList<SweepRunResult> results)
    {
        var points = results.Where(r => r.Metric is > 0 && r.Images > 0).ToList();
        if (points.Select(p => p.Images).Distinct().Count() < 2) return null;
        var plot = new Plot();
        PlotFont.Use(plot);
        var xs = points.Select(p => Math.Log10(p.Images)).ToArray();
        var ys = points.Select(p => Math.Log10(p.Metric!.Value)).ToArray();
        var runs = plot.Add.ScatterPoints(xs, ys);
        runs.MarkerSize = 7;
        runs.LegendText = "runs";
        if (Fit(points) is { } fit)
        {
            double x0 = xs.Min(), x1 = xs.Max();
            var line = plot.Add.Line(x0, Math.Log10(fit.Predict(Math.Pow(10, x0))), x1, Math.Log10(fit.Predict(Math.Pow(10, x1))));
            line.LegendText = string.Create(CultureInfo.InvariantCulture, $"fit: {fit.A:G3} x images^{fit.B:F3} (R2 {fit.R2:F2})");
        }
        if (Best(spec, points) is { } best)
        {
            var mark = plot.Add.ScatterPoints(new[] { Math.Log10(best.Images) }, new[] { Math.Log10(best.Metric!.Value) });
            mark.MarkerSize = 14;
            mark.MarkerShape = MarkerShape.OpenCircle;
            mark.LegendText = $"best: {best.Run}";
        }
        plot.Title($"sweep {spec.Name}: {spec.Metric} against compute");
        plot.XLabel("log10 images seen");
        plot.YLabel($"log10 {spec.Metric}");
        plot.ShowLegend();
        return plot;
    }
}

/// <summary>RUN_DIR/sweep-run.json: what the sweep's executor knows of a run (invocations, last exit code, CPU seconds in all).</summary>
public sealed record SweepRunRecord(
    [property: JsonPropertyName("run")] string Run,
    [property: JsonPropertyName("invocations")] int Invocations,
    [property: JsonPropertyName("last_exit_code")] int? LastExitCode,
    [property: JsonPropertyName("cpu_seconds")] double CpuSeconds)
{
    public const string FileName = "sweep-run.json";

    public static SweepRunRecord? Read(string runDir)
    {
        var path = Path.Combine(runDir, FileName);
        try { return File.Exists(path) ? JsonSerializer.Deserialize<SweepRunRecord>(File.ReadAllText(path)) : null; }
        catch (Exception e) when (e is IOException or JsonException) { return null; }
    }

    public void Write(string runDir) =>
        Ect.Compute.IO.AtomicFile.Write(Path.Combine(runDir, FileName), s => JsonSerializer.Serialize(s, this));
}
