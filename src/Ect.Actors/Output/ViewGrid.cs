using SkiaSharp;
using Ect.Compute.IO;

namespace Ect.Actors.Output;

/// <summary>
/// A sample grid for people: every image scaled up by an integer factor (nearest neighbour, so pixels stay pixels) to
/// at least <see cref="MinTilePixels"/> px, a thin gutter between images, and a caption band on top saying what the
/// grid is (step, sampler, times). The raw-size grid (<see cref="Png.SaveGrid"/>) stays the one for tools.
/// </summary>
public static class ViewGrid
{
    public const int MinTilePixels = 64;
    private const int Gutter = 2;

    /// <summary>The integer factor that brings a tile of <paramref name="size"/> px to at least <see cref="MinTilePixels"/>.</summary>
    public static int Scale(int size) => Math.Max(1, (MinTilePixels + size - 1) / size);

    /// <summary>Writes NCHW images in [-1, 1] (1 or 3 channels) as a scaled, captioned grid PNG, atomically.</summary>
    public static void Save(string path, float[] nchw, int n, int channels, int size, string caption)
    {
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(n), $"a grid needs at least one image, got {n}");
        if ((long)n * channels * size * size > nchw.Length)
            throw new ArgumentException($"{nchw.Length} values cannot hold {n} images of {channels}x{size}x{size}", nameof(nchw));
        int scale = Scale(size), tile = size * scale;
        int cols = (int)Math.Ceiling(Math.Sqrt(n)), rows = (n + cols - 1) / cols;
        var font = PlotFont.FontFile;
        int captionHeight = font is null || caption.Length == 0 ? 0 : 22;
        int width = cols * tile + (cols + 1) * Gutter;
        int gridHeight = rows * tile + (rows + 1) * Gutter;
        // The caption needs room: a 1-image grid of 64 px would cut it off.
        width = Math.Max(width, captionHeight > 0 ? 360 : 0);

        using var bitmap = new SKBitmap(new SKImageInfo(width, captionHeight + gridHeight, SKColorType.Rgba8888, SKAlphaType.Opaque));
        using (var canvas = new SKCanvas(bitmap)) canvas.Clear(new SKColor(48, 48, 48));
        var pixels = bitmap.GetPixelSpan();
        int rowBytes = bitmap.RowBytes, plane = size * size;
        for (int i = 0; i < n; i++)
        {
            int ox = Gutter + i % cols * (tile + Gutter), oy = captionHeight + Gutter + i / cols * (tile + Gutter);
            for (int y = 0; y < tile; y++)
                for (int x = 0; x < tile; x++)
                {
                    int src = (y / scale) * size + x / scale, o = (oy + y) * rowBytes + (ox + x) * 4;
                    for (int c = 0; c < 3; c++)
                        pixels[o + c] = ToByte(nchw[(i * channels + Math.Min(c, channels - 1)) * plane + src]);
                    pixels[o + 3] = 255;
                }
        }
        if (captionHeight > 0)
        {
            using var canvas = new SKCanvas(bitmap);
            using var typeface = SKTypeface.FromFile(font);
            using var skFont = new SKFont(typeface, 13);
            using var paint = new SKPaint { Color = new SKColor(235, 235, 235), IsAntialias = true };
            canvas.DrawText(caption, 6, 16, SKTextAlign.Left, skFont, paint);
        }
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
        var tmp = path + ".tmp";
        using (var f = new FileStream(tmp, FileMode.Create)) data.SaveTo(f);
        AtomicFile.Commit(tmp, path);
    }

    /// <summary>Same pixel values as <see cref="Png.SaveGrid"/>: round((v + 1) * 127.5), clamped.</summary>
    private static byte ToByte(float v) => float.IsNaN(v) ? (byte)0 : (byte)Math.Clamp(MathF.Round((v + 1) * 127.5f), 0, 255);
}
