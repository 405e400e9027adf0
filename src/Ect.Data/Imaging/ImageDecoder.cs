using System.Buffers.Binary;
using System.Runtime.InteropServices;
using SkiaSharp;

namespace Ect.Data.Imaging;

/// <summary>
/// Decodes image files (PNG, JPEG, BMP, WebP, GIF: whatever SkiaSharp reads) to CHW uint8 with 1 or 3 channels.
/// Channel count follows EDM (PIL + numpy): a grayscale PNG (colour type 0) is 1 channel, RGB is 3. Grey+alpha and
/// RGBA PNGs are refused as EDM's dataset_tool refuses them; for other formats SkiaSharp's Gray8 report means 1 channel.
/// </summary>
public static class ImageDecoder
{
    /// <summary>The largest image side the decoder accepts (a header may claim up to 2^31 - 1).</summary>
    public const int MaxSide = 16384;

    /// <summary>
    /// The most pixels one image may have: 2^27 (e.g. 16384 x 8192, 11585 x 11585). Decoding takes 4 bytes a pixel
    /// (RGBA) plus 3 for the CHW copy, on each of the two decoding threads: about 1.9 GB at this limit.
    /// </summary>
    public const long MaxPixels = 1L << 27;

    /// <summary>Largest encoded image file read into memory (a zip entry's or a file's size, checked before reading).</summary>
    public const long MaxFileBytes = 1L << 30;

    public static readonly string[] Extensions = [".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif"];

    public static bool IsImageName(string name)
    {
        var ext = Path.GetExtension(name).ToLowerInvariant();
        return Array.IndexOf(Extensions, ext) >= 0;
    }

    /// <summary>Decodes <paramref name="bytes"/>; <paramref name="file"/>/<paramref name="entry"/> name it in errors.</summary>
    public static unsafe (int Channels, int Height, int Width, byte[] Chw) Decode(byte[] bytes, string file, string? entry)
    {
        if (PngStructure.IsPng(bytes)) PngStructure.Check(bytes, file, entry); // cut short or damaged: refused, not half-decoded
        int? pngChannels = PngChannels(bytes, file, entry);
        // The PNG header's own size, before any decoder sees (or allocates for) it.
        if (pngChannels is not null)
            CheckSize(BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(16)), BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(20)), file, entry);
        using var data = SKData.CreateCopy(bytes);
        using var codec = SKCodec.Create(data);
        if (codec is null)
            throw new DatasetException(file, entry, $"does not decode as an image ({bytes.Length} bytes, not a valid PNG/JPEG/BMP/WebP)",
                "Re-export the image or delete it from the dataset");
        var info = codec.Info;
        int w = info.Width, h = info.Height;
        if (w <= 0 || h <= 0)
            throw new DatasetException(file, entry, $"has an empty image size {w}x{h}", "Re-export the image or delete it");
        // JPEG, WebP, GIF, BMP: the size the codec read from the header, checked before the pixel buffers exist.
        CheckSize(w, h, file, entry);
        int channels = pngChannels ?? (info.ColorType == SKColorType.Gray8 ? 1 : 3);
        // Within the limits these products are < 2^31; checked all the same, in 64 bits, so a change of limits
        // cannot bring back an overflow that hands the native decoder a short buffer.
        int plane = checked((int)((long)h * w));
        var chw = GC.AllocateUninitializedArray<byte>(checked(channels * plane));
        SKCodecResult result;
        if (channels == 1)
        {
            var gi = new SKImageInfo(w, h, SKColorType.Gray8, SKAlphaType.Opaque);
            fixed (byte* p = chw) result = codec.GetPixels(gi, (IntPtr)p);
        }
        else
        {
            var ri = new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Unpremul);
            var rgba = GC.AllocateUninitializedArray<byte>(checked(4 * plane));
            fixed (byte* p = rgba) result = codec.GetPixels(ri, (IntPtr)p);
            for (int i = 0; i < plane; i++)
            {
                chw[i] = rgba[4 * i];
                chw[plane + i] = rgba[4 * i + 1];
                chw[2 * plane + i] = rgba[4 * i + 2];
            }
        }
        if (result != SKCodecResult.Success)
            throw new DatasetException(file, entry, $"does not decode completely (decoder says {result}; the file is probably truncated or corrupt)",
                "Re-export the image or delete it from the dataset");
        return (channels, h, w, chw);
    }

    /// <summary>
    /// Refuses an image whose header claims more than <see cref="MaxSide"/> per side or <see cref="MaxPixels"/>
    /// in all, naming the file and the size (the decoder would otherwise allocate, or overflow, for it).
    /// </summary>
    public static void CheckSize(long width, long height, string file, string? entry)
    {
        if (width <= MaxSide && height <= MaxSide && width * height <= MaxPixels) return;
        throw new DatasetException(file, entry,
            $"claims an image size of {width}x{height} ({(double)width * height:N0} pixels); images may be at most {MaxSide} pixels a side and {MaxPixels:N0} pixels in all " +
            "(a header this large is corrupt or crafted, or the image is far larger than training needs)",
            "Shrink the image first (e.g. ImageMagick: mogrify -resize 4096x4096 FILE) or delete it from the dataset");
    }

    /// <summary>Channel count from a PNG's IHDR, null when the bytes are not a PNG.</summary>
    private static int? PngChannels(byte[] b, string file, string? entry)
    {
        if (b.Length < 8 || b[0] != 0x89 || b[1] != 0x50 || b[2] != 0x4E || b[3] != 0x47) return null;
        if (b.Length < 33 || b[12] != (byte)'I' || b[13] != (byte)'H' || b[14] != (byte)'D' || b[15] != (byte)'R')
            throw new DatasetException(file, entry, "does not decode: PNG signature but no valid IHDR header (truncated or corrupt)", "Re-export the image or delete it");
        int colorType = b[25];
        return colorType switch
        {
            0 => 1,
            2 or 3 => 3,
            4 or 6 => throw new DatasetException(file, entry,
                $"is a PNG with an alpha channel ({(colorType == 4 ? "grey+alpha" : "RGBA")}); datasets take grayscale or RGB images, as EDM's dataset_tool",
                "Convert the images to RGB or grayscale (e.g. with ImageMagick: mogrify -alpha off *.png)"),
            _ => throw new DatasetException(file, entry, $"is a PNG with unknown colour type {colorType}", "Re-export the image"),
        };
    }
}
