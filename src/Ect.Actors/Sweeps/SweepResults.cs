using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Ect.Actors.Configuration;
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
        if (state != "finished" && SweepProgress.Read(dir) is { } live)
        {
            // Between checkpoints the journal lags: the live step is the last line of stats.jsonl.
            step = Math.Max(step, live.Step);
            // sweep-run.json is written when the child exits: a record newer than the last step ended this training.
            var recordTime = File.GetLastWriteTimeUtc(Path.Combine(dir, SweepRunRecord.FileName));
            bool exitedSince = record is not null && live.Time is { } t && recordTime >= t.UtcDateTime;
            if (!exitedSince && SweepProgress.Left(spec, run, live) is { } left && left == TimeSpan.Zero && live.Time is not null)
                state = "evaluating"; // every step done, no RunFinished yet: the end-of-run evaluators (minutes) are working
            else if (!exitedSince && SweepProgress.IsTraining(live, DateTimeOffset.UtcNow))
                state = "training";
        }
        if (state is not ("finished" or "training" or "evaluating") && record?.LastExitCode is { } code && code != 0) state = $"failed (exit {code})";
        var metrics = MetricsFile.Read(dir).Where(m => double.IsFinite(m.Value))
            .GroupBy(m => m.Metric).ToDictionary(g => g.Key, g => g.OrderBy(m => m.Step).Last());
        double images = metrics.Values.Select(m => m.Kimg * 1000).DefaultIfEmpty(0).Max();
        return new(run.Id, overlay, state, step, images, record?.CpuSeconds,
            metrics.TryGetValue(spec.Metric, out var mine) ? mine.Value : null,
            metrics.ToDictionary(kv => kv.Key, kv => kv.Value.Value));
    }

    /// <summary>
    /// The runs of a saved table (a sweep-results.json of this spec), in the spec's order; a run of the spec the table
    /// lacks is pending. Refuses (naming the file) a table of another sweep, a run the spec does not have, or a run
    /// whose overlay differs from the spec's.
    /// </summary>
    public static IReadOnlyList<SweepRunResult> ReadTable(SweepSpec spec, string tableFile)
    {
        List<SweepRunResult> saved;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(tableFile));
            var name = doc.RootElement.TryGetProperty("sweep", out var n) ? n.GetString() : null;
            if (name != spec.Name) throw new ConfigurationException($"{tableFile}: a table of sweep \"{name}\", not \"{spec.Name}\".");
            saved = doc.RootElement.GetProperty("runs").Deserialize<List<SweepRunResult>>() ?? [];
        }
        catch (Exception e) when (e is IOException or JsonException or KeyNotFoundException or InvalidOperationException or UnauthorizedAccessException)
        { throw new ConfigurationException($"{tableFile}: not a readable sweep-results.json ({e.Message})."); }
        var byId = spec.Runs.ToDictionary(r => r.Id);
        foreach (var row in saved)
        {
            if (!byId.TryGetValue(row.Run, out var run)) throw new ConfigurationException($"{tableFile}: run {row.Run} is not a run of {spec.SpecPath}.");
            var mine = run.Overlay.ToDictionary(kv => kv.Key, kv => kv.Value);
            if (row.Overlay is null || mine.Count != row.Overlay.Count || mine.Any(kv => !row.Overlay.TryGetValue(kv.Key, out var v) || v != kv.Value))
                throw new ConfigurationException($"{tableFile}: run {row.Run} has another overlay than {spec.SpecPath} gives it.");
        }
        return spec.Runs.Select(r => saved.FirstOrDefault(x => x.Run == r.Id)
            ?? new SweepRunResult(r.Id, r.Overlay.ToDictionary(kv => kv.Key, kv => kv.Value), "pending", 0, 0, null, null, new Dictionary<string, double>())).ToList();
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
            fit = ComputeAxis(spec, results) is var axis && Fit(axis) is { } fit
                ? new { a = fit.A, b = fit.B, r2 = fit.R2, points = fit.Points, compute_key = spec.ComputeKey, runs = axis.Select(r => r.Run).ToList() } : null,
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

    /// <summary>
    /// The runs the power law is fitted on: those of one recipe at different computes. With a compute-key, runs are
    /// grouped by the resolved value of every other key any overlay sets (a run that leaves a key out has its default,
    /// so { steps = 800 } and { steps = 400 } are one recipe and { steps = 800, lr = 2e-4 } another), the keys in
    /// compute-scaled by their ratio to the compute key instead (double-ticks 4 at 400 steps is the recipe of 8 at
    /// 800); the axis is the group with the most distinct computes (ties: the most runs, then the first in the spec).
    /// Without a compute-key every run with the metric is on it (one recipe: the sweep varies only compute, or the
    /// user wants the envelope). A fit over runs that change the recipe as well as compute mixes two effects (the
    /// first recipe sweep's fit over all its runs had R2 0.68; over its compute axis 0.987).
    /// </summary>
    public static IReadOnlyList<SweepRunResult> ComputeAxis(SweepSpec spec, IReadOnlyList<SweepRunResult> results)
    {
        var with = results.Where(r => r.Metric is > 0 && r.Images > 0).ToList();
        if (spec.ComputeKey is not { } computeKey) return with;
        var keys = spec.Runs.SelectMany(r => r.Overlay.Select(kv => kv.Key)).Distinct().Where(k => k != computeKey).Order(StringComparer.Ordinal).ToList();
        var order = spec.Runs.Select((r, i) => (r.Id, i)).ToDictionary(x => x.Id, x => x.i);
        string Recipe(SweepRunResult r)
        {
            var config = spec.ConfigOf(spec.Runs[order[r.Run]]);
            string Value(string k) => config.HasPath(k) ? EctConfiguration.Inline(config.GetValue(k)) : "";
            return string.Join("\n", keys.Select(k =>
                spec.ComputeScaled.Contains(k)
                && double.TryParse(Value(k), NumberStyles.Float, CultureInfo.InvariantCulture, out var v)
                && double.TryParse(Value(computeKey), NumberStyles.Float, CultureInfo.InvariantCulture, out var c) && c != 0
                    ? $"{k}/{computeKey}={v / c:G6}" : $"{k}={Value(k)}"));
        }
        var axis = with.GroupBy(Recipe)
            .Select(g => g.ToList())
            .Where(g => g.Select(r => r.Images).Distinct().Count() >= 2)
            .OrderByDescending(g => g.Select(r => r.Images).Distinct().Count()).ThenByDescending(g => g.Count).ThenBy(g => g.Min(r => order[r.Run]))
            .FirstOrDefault();
        return axis ?? [];
    }

    /// <summary>A run's label in the plot: its overlay without the keys scaled with compute (e.g. "steps=800, lr=2e-4").</summary>
    private static string Label(SweepSpec spec, SweepRunResult r)
    {
        var own = r.Overlay.Where(kv => !spec.ComputeScaled.Contains(kv.Key)).Select(kv => $"{kv.Key.Split('.')[^1]}={kv.Value}").ToList();
        return own.Count == 0 ? r.Run : string.Join(", ", own);
    }

    private static Plot? Plot(SweepSpec spec, IReadOnlyList<SweepRunResult> results)
    {
        var points = results.Where(r => r.Metric is > 0 && r.Images > 0).ToList();
        if (points.Select(p => p.Images).Distinct().Count() < 2) return null;
        var plot = new Plot();
        PlotFont.Use(plot);
        var axis = ComputeAxis(spec, results);
        var others = points.Where(p => !axis.Contains(p)).ToList();
        double X(SweepRunResult r) => Math.Log10(r.Images);
        double Y(SweepRunResult r) => Math.Log10(r.Metric!.Value);
        if (axis.Count > 0)
        {
            var onAxis = plot.Add.ScatterPoints(axis.Select(X).ToArray(), axis.Select(Y).ToArray());
            onAxis.MarkerSize = 8;
            onAxis.LegendText = spec.ComputeKey is null ? "runs" : $"compute axis ({spec.ComputeKey})";
            if (Fit(axis) is { } fit)
            {
                double x0 = axis.Min(X), x1 = axis.Max(X);
                var line = plot.Add.Line(x0, Math.Log10(fit.Predict(Math.Pow(10, x0))), x1, Math.Log10(fit.Predict(Math.Pow(10, x1))));
                line.LegendText = string.Create(CultureInfo.InvariantCulture, $"fit: {fit.A:G4} x images^{fit.B:F3} (R2 {fit.R2:F3}, {fit.Points} runs)");
            }
        }
        if (others.Count > 0)
        {
            var off = plot.Add.ScatterPoints(others.Select(X).ToArray(), others.Select(Y).ToArray());
            off.MarkerSize = 8;
            off.MarkerShape = MarkerShape.FilledSquare;
            off.LegendText = "other recipes";
            foreach (var r in others)
            {
                var text = plot.Add.Text(Label(spec, r), X(r), Y(r));
                text.LabelFontSize = 11;
                text.OffsetX = 7;
                text.OffsetY = -7;
            }
        }
        if (Best(spec, points) is { } best)
        {
            var mark = plot.Add.ScatterPoints(new[] { X(best) }, new[] { Y(best) });
            mark.MarkerSize = 16;
            mark.MarkerShape = MarkerShape.OpenCircle;
            mark.LegendText = string.Create(CultureInfo.InvariantCulture, $"best: {Label(spec, best)} ({best.Metric:G4})");
        }
        plot.Title($"sweep {spec.Name}: {spec.Metric} against compute");
        plot.XLabel("log10 images seen");
        plot.YLabel($"log10 {spec.Metric}");
        // Outside the data area, below it: inside, the legend sat on runs (the best one in the lower right, then the
        // q = 256 run in the upper right); a sweep's points can be anywhere.
        plot.ShowLegend(Edge.Bottom);
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
