using System.Buffers.Binary;
using System.IO.Compression;
using Ect.Compute.IO;

namespace Ect.Actors.Output;

/// <summary>A minimal PNG writer (8-bit grayscale or RGB) and an image grid, written atomically.</summary>
public static class Png
{
    /// <summary>Tiles NCHW images in [-1, 1] into a grid (columns = ceil(sqrt(N))) and writes it to <paramref name="path"/>.</summary>
    public static void SaveGrid(string path, float[] nchw, int n, int channels, int size)
    {
        int cols = (int)Math.Ceiling(Math.Sqrt(n)), rows = (n + cols - 1) / cols;
        int w = cols * size, h = rows * size, ch = channels == 1 ? 1 : 3;
        var pixels = new byte[w * h * ch];
        for (int i = 0; i < n; i++)
        {
            int gx = i % cols * size, gy = i / cols * size;
            for (int c = 0; c < ch; c++)
                for (int y = 0; y < size; y++)
                    for (int x = 0; x < size; x++)
                    {
                        float v = nchw[((i * channels + Math.Min(c, channels - 1)) * size + y) * size + x];
                        pixels[((gy + y) * w + gx + x) * ch + c] = (byte)Math.Clamp(MathF.Round((v + 1) * 127.5f), 0, 255);
                    }
        }
        Write(path, pixels, w, h, ch);
    }

    public static void Write(string path, byte[] pixels, int width, int height, int channels)
    {
        var raw = new MemoryStream();
        for (int y = 0; y < height; y++)
        {
            raw.WriteByte(0); // filter: none
            raw.Write(pixels, y * width * channels, width * channels);
        }
        var z = new MemoryStream();
        using (var zs = new ZLibStream(z, CompressionLevel.Optimal, leaveOpen: true)) raw.WriteTo(zs);

        var tmp = path + ".tmp";
        using (var f = new FileStream(tmp, FileMode.Create))
        {
            f.Write([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]);
            var ihdr = new byte[13];
            BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
            BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
            ihdr[8] = 8; ihdr[9] = (byte)(channels == 1 ? 0 : 2);
            Chunk(f, "IHDR", ihdr);
            Chunk(f, "IDAT", z.ToArray());
            Chunk(f, "IEND", []);
        }
        AtomicFile.Commit(tmp, path);
    }

    private static void Chunk(Stream s, string type, byte[] data)
    {
        Span<byte> len = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(len, data.Length);
        s.Write(len);
        var typeBytes = System.Text.Encoding.ASCII.GetBytes(type);
        s.Write(typeBytes);
        s.Write(data);
        uint crc = Crc(Crc(0xFFFFFFFFu, typeBytes), data) ^ 0xFFFFFFFFu;
        BinaryPrimitives.WriteUInt32BigEndian(len, crc);
        s.Write(len);
    }

    private static readonly uint[] CrcTable = Enumerable.Range(0, 256).Select(n =>
    {
        uint c = (uint)n;
        for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    private static uint Crc(uint crc, byte[] data)
    {
        foreach (var b in data) crc = CrcTable[(crc ^ b) & 0xFF] ^ (crc >> 8);
        return crc;
    }
}
