using ScottPlot;

namespace Ect.Actors.Output;

/// <summary>
/// RUN_DIR/fd.png: FD-ResNet18 against training step, one line per number of sampling steps. Drawn from metrics.jsonl
/// only, so it can be rebuilt at any time from that file.
/// </summary>
public static class FdPlot
{
    public const string Name = "fd.png";
    private const string Prefix = "fd-resnet18-";

    /// <summary>Writes fd.png when metrics.jsonl holds at least one finite FD-ResNet18 value; returns its path or null.</summary>
    public static string? Write(string runDir)
    {
        var series = MetricsFile.Read(runDir)
            .Where(r => r.Metric.StartsWith(Prefix, StringComparison.Ordinal) && double.IsFinite(r.Value))
            .GroupBy(r => r.SamplingSteps)
            .OrderBy(g => g.Key)
            .ToList();
        if (series.Count == 0) return null;
        var plot = new Plot();
        PlotFont.Use(plot);
        foreach (var g in series)
        {
            var pts = g.OrderBy(r => r.Step).ToList();
            var sc = plot.Add.Scatter(pts.Select(p => (double)p.Step).ToArray(), pts.Select(p => p.Value).ToArray());
            sc.MarkerSize = 5;
            sc.LegendText = g.Key == 1 ? "1 step" : $"{g.Key} steps";
        }
        var count = series.SelectMany(g => g).Last().Count;
        plot.Title($"FD-ResNet18 ({count} generated images; not FID)");
        plot.XLabel("step");
        plot.YLabel("FD-ResNet18");
        plot.ShowLegend();
        var path = Path.Combine(runDir, Name);
        PlotFont.SaveAtomically(plot, path);
        return path;
    }
}
