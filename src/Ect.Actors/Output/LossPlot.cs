using ScottPlot;

namespace Ect.Actors.Output;

/// <summary>RUN_DIR/loss.png: training loss per step (one series per phase, log scale), from stats.jsonl.</summary>
public static class LossPlot
{
    private const string FontName = "ect-plot-sans";
    private static readonly string[] FontFiles =
        ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf"];
    private static bool s_fontAdded;

    /// <summary>
    /// The SkiaSharp native build in use (NoDependencies) has no fontconfig: without a font file named here the
    /// plot has no text at all. Uses a common system TTF when present.
    /// </summary>
    private static void UseFontFile(Plot plot)
    {
        var file = FontFiles.FirstOrDefault(File.Exists);
        if (file == null) return;
        lock (FontFiles)
        {
            if (!s_fontAdded) { Fonts.AddFontFile(FontName, file); s_fontAdded = true; }
        }
        plot.Font.Set(FontName);
    }

    public static string? Write(string runDir)
    {
        var rows = StatsFile.Read(runDir);
        if (rows.Count < 2) return null;
        var plot = new Plot();
        UseFontFile(plot);
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
        plot.SavePng(path + ".tmp.png", 800, 500);
        File.Move(path + ".tmp.png", path, overwrite: true);
        return path;
    }
}
