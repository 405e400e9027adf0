using System.Buffers.Binary;
using System.IO.Compression;

namespace Ect.Data.Imaging;

/// <summary>
/// A small PNG writer for 8-bit grayscale (colour type 0) and RGB (colour type 2) images. Own code rather than
/// SkiaSharp because dataset export needs exact grayscale PNGs (EDM reads them back as 1 channel) and bit-stable
/// output: the bytes depend only on the pixels (filter Sub on every row, zlib at the "Optimal" level).
/// </summary>
public static class PngEncoder
{
    private static readonly uint[] CrcTable = BuildCrcTable();
    private static readonly byte[] Signature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>Encodes CHW uint8 pixels (1 or 3 channels) as a PNG file's bytes.</summary>
    public static byte[] EncodeChw(ReadOnlySpan<byte> chw, int channels, int height, int width)
    {
        if (channels is not (1 or 3)) throw new ArgumentException($"PNG export takes 1 or 3 channels, got {channels}", nameof(channels));
        if (chw.Length != channels * height * width) throw new ArgumentException("pixel count does not match the shape", nameof(chw));
        int stride = width * channels;
        // Filtered scanlines: one filter byte (1 = Sub) then the row's deltas to the pixel on the left.
        var raw = new byte[height * (stride + 1)];
        int plane = height * width;
        for (int y = 0; y < height; y++)
        {
            int o = y * (stride + 1);
            raw[o] = 1;
            for (int x = 0; x < width; x++)
                for (int c = 0; c < channels; c++)
                {
                    byte v = chw[c * plane + y * width + x];
                    byte left = x == 0 ? (byte)0 : chw[c * plane + y * width + x - 1];
                    raw[o + 1 + x * channels + c] = (byte)(v - left);
                }
        }
        using var ms = new MemoryStream(raw.Length / 2 + 128);
        ms.Write(Signature);
        Span<byte> ihdr = stackalloc byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr[4..], height);
        ihdr[8] = 8;                              // bit depth
        ihdr[9] = (byte)(channels == 1 ? 0 : 2);  // colour type: grey or RGB
        ihdr[10] = 0; ihdr[11] = 0; ihdr[12] = 0; // deflate, adaptive filtering, no interlace
        WriteChunk(ms, "IHDR", ihdr);
        using (var z = new MemoryStream())
        {
            using (var zs = new ZLibStream(z, CompressionLevel.Optimal, leaveOpen: true)) zs.Write(raw);
            WriteChunk(ms, "IDAT", z.GetBuffer().AsSpan(0, (int)z.Length));
        }
        WriteChunk(ms, "IEND", ReadOnlySpan<byte>.Empty);
        return ms.ToArray();
    }

    private static void WriteChunk(Stream s, string type, ReadOnlySpan<byte> data)
    {
        Span<byte> b4 = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(b4, data.Length);
        s.Write(b4);
        Span<byte> t = stackalloc byte[4];
        for (int i = 0; i < 4; i++) t[i] = (byte)type[i];
        s.Write(t);
        s.Write(data);
        uint crc = Crc(Crc(0xFFFFFFFFu, t), data) ^ 0xFFFFFFFFu;
        BinaryPrimitives.WriteUInt32BigEndian(b4, crc);
        s.Write(b4);
    }

    internal static uint Crc(uint crc, ReadOnlySpan<byte> data)
    {
        foreach (var b in data) crc = CrcTable[(crc ^ b) & 0xFF] ^ (crc >> 8);
        return crc;
    }

    private static uint[] BuildCrcTable()
    {
        var t = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            uint c = n;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[n] = c;
        }
        return t;
    }
}
