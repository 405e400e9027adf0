using ScottPlot;
using Ect.Compute.IO;

namespace Ect.Actors.Output;

/// <summary>The font every run plot uses (loss.png, fd.png).</summary>
internal static class PlotFont
{
    private const string FontName = "ect-plot-sans";
    internal static readonly string[] FontFiles =
        ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf"];
    private static bool s_fontAdded;

    /// <summary>
    /// The SkiaSharp native build in use (NoDependencies) has no fontconfig: without a font file named here the
    /// plot has no text at all. Uses a common system TTF when present.
    /// </summary>
    /// <summary>The first of the known system TTF files that exists, or null (then pictures carry no text).</summary>
    public static string? FontFile => FontFiles.FirstOrDefault(File.Exists);

    public static void Use(Plot plot)
    {
        var file = FontFiles.FirstOrDefault(File.Exists);
        if (file == null) return;
        lock (FontFiles)
        {
            if (!s_fontAdded) { Fonts.AddFontFile(FontName, file); s_fontAdded = true; }
        }
        plot.Font.Set(FontName);
    }

    /// <summary>Saves through a temporary file, so that a reader never sees half a PNG.</summary>
    public static void SaveAtomically(Plot plot, string path, int width = 800, int height = 500)
    {
        plot.SavePng(path + ".tmp.png", width, height);
        AtomicFile.Commit(path + ".tmp.png", path);
    }
}
