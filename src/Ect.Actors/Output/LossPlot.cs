using ScottPlot;

namespace Ect.Actors.Output;

/// <summary>RUN_DIR/loss.png: training loss per step (one series per phase, log scale), from stats.jsonl.</summary>
public static class LossPlot
{
    public static string? Write(string runDir)
    {
        var rows = StatsFile.Read(runDir);
        if (rows.Count < 2) return null;
        var plot = new Plot();
        PlotFont.Use(plot);
        foreach (var g in rows.GroupBy(r => r.Phase))
        {
            var pts = g.Where(r => r.Loss > 0).ToList();
            if (pts.Count == 0) continue;
            var sc = plot.Add.Scatter(pts.Select(p => (double)p.Step).ToArray(), pts.Select(p => Math.Log10(p.Loss)).ToArray());
            sc.MarkerSize = 0;
            sc.LegendText = g.Key;
        }
        plot.Title("training loss");
        plot.XLabel("step");
        plot.YLabel("log10(loss)");
        plot.ShowLegend();
        var path = Path.Combine(runDir, "loss.png");
        PlotFont.SaveAtomically(plot, path);
        return path;
    }
}
