using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;
using Ect.Compute.IO;

namespace Ect.Data;

/// <summary>
/// PNG grids of images in [-1, 1] (NCHW, 1 or 3 channels), as EDM's generate.py writes its sample grids: pixel =
/// clip(x * 127.5 + 128, 0, 255) truncated to uint8. Tiles touch (no gutter); empty cells at the end stay black.
/// </summary>
public static class ImageGrid
{
    /// <summary>Near-square grid: columns = ceil(sqrt(count)) unless given, rows = enough to hold all.</summary>
    public static (int Rows, int Columns) Shape(int count, int? columns = null)
    {
        if (count <= 0) throw new ArgumentOutOfRangeException(nameof(count), $"a grid needs at least one image, got {count}");
        if (columns is <= 0) throw new ArgumentOutOfRangeException(nameof(columns), $"columns must be positive, got {columns}");
        int cols = Math.Min(count, columns ?? (int)Math.Ceiling(Math.Sqrt(count)));
        return ((count + cols - 1) / cols, cols);
    }

    /// <summary>Encodes <paramref name="count"/> images [count, channels, height, width] as one grid PNG.</summary>
    public static byte[] EncodePng(ReadOnlySpan<float> images, int count, int channels, int height, int width, int? columns = null)
    {
        if (channels is not (1 or 3)) throw new ArgumentException($"image grids take 1 or 3 channels, got {channels}", nameof(channels));
        if (images.Length < (long)count * channels * height * width)
            throw new ArgumentException($"{images.Length} floats cannot hold {count} images of {channels}x{height}x{width}", nameof(images));
        var (rows, cols) = Shape(count, columns);
        int gw = cols * width, gh = rows * height;
        var info = new SKImageInfo(gw, gh, channels == 1 ? SKColorType.Gray8 : SKColorType.Rgba8888, SKAlphaType.Opaque);
        using var bitmap = new SKBitmap(info);
        var pixels = bitmap.GetPixelSpan();
        int bpp = channels == 1 ? 1 : 4;
        int rowBytes = bitmap.RowBytes;
        if (bpp == 4) for (int i = 3; i < pixels.Length; i += 4) { pixels[i - 3] = 0; pixels[i - 2] = 0; pixels[i - 1] = 0; pixels[i] = 255; }
        else pixels.Clear();
        int plane = height * width;
        for (int n = 0; n < count; n++)
        {
            int oy = n / cols * height, ox = n % cols * width;
            var img = images.Slice(n * channels * plane, channels * plane);
            for (int y = 0; y < height; y++)
                for (int x = 0; x < width; x++)
                {
                    int o = (oy + y) * rowBytes + (ox + x) * bpp;
                    for (int c = 0; c < channels; c++)
                        pixels[o + c] = ToByte(img[c * plane + y * width + x]);
                }
        }
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    /// <summary>Encodes a [N, C, H, W] tensor (any float dtype or device) as one grid PNG.</summary>
    public static byte[] EncodePng(Tensor images, int? columns = null)
    {
        if (images.dim() != 4)
            throw new ArgumentException($"image grids take a [N, C, H, W] tensor, got shape [{string.Join(", ", images.shape)}]", nameof(images));
        using var cpu = images.detach().to(ScalarType.Float32, torch.CPU).contiguous();
        var s = cpu.shape;
        var data = cpu.data<float>().ToArray();
        return EncodePng(data, (int)s[0], (int)s[1], (int)s[2], (int)s[3], columns);
    }

    public static void SavePng(ReadOnlySpan<float> images, int count, int channels, int height, int width, string path, int? columns = null)
        => WriteFile(path, EncodePng(images, count, channels, height, width, columns));

    public static void SavePng(float[] images, int count, int channels, int height, int width, string path, int? columns = null)
        => WriteFile(path, EncodePng(images, count, channels, height, width, columns));

    public static void SavePng(Tensor images, string path, int? columns = null) => WriteFile(path, EncodePng(images, columns));

    /// <summary>EDM's float → uint8 map: clip(x * 127.5 + 128, 0, 255), truncated; NaN becomes 0.</summary>
    public static byte ToByte(float x)
    {
        float v = x * 127.5f + 128f;
        if (!(v > 0)) return 0;
        return v >= 255f ? (byte)255 : (byte)v;
    }

    private static void WriteFile(string path, byte[] png)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
        // Write then rename, so a viewer (or the daemon's web page) never sees half a file.
        var tmp = path + ".tmp";
        File.WriteAllBytes(tmp, png);
        AtomicFile.Commit(tmp, path);
    }
}
