using System.Buffers.Binary;

namespace Ect.Data.Imaging;

/// <summary>
/// The chunk structure of a PNG file, checked before it is decoded: every chunk fits in the file, its CRC-32
/// matches (IHDR aside: the header checks name its wrong field), and the file ends with IEND. The decoder (SkiaSharp/libpng) accepts a file cut short after its image
/// data and ignores CRCs of chunks it does not need, so a damaged copy of a dataset would load as if intact
/// (CorruptInputTests found such a file among 40 damaged ones).
/// </summary>
public static class PngStructure
{
    private static ReadOnlySpan<byte> Signature => [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    public static bool IsPng(ReadOnlySpan<byte> bytes) => bytes.Length >= 4 && bytes[..4].SequenceEqual(Signature[..4]);

    /// <summary>Throws a <see cref="DatasetException"/> naming the file (and zip entry) when the PNG is cut short or a chunk is damaged.</summary>
    public static void Check(ReadOnlySpan<byte> b, string file, string? entry)
    {
        const string fix = "Re-export the image or delete it from the dataset (a damaged or incomplete copy?)";
        if (b.Length < Signature.Length || !b[..Signature.Length].SequenceEqual(Signature))
            throw new DatasetException(file, entry, "does not decode: it starts like a PNG but its 8-byte signature is damaged", fix);
        long at = Signature.Length;
        while (true)
        {
            if (at + 12 > b.Length)
                throw new DatasetException(file, entry, $"does not decode: it is cut short ({b.Length} bytes), the chunk at byte {at} is incomplete and there is no IEND", fix);
            long length = BinaryPrimitives.ReadUInt32BigEndian(b.Slice((int)at, 4));
            if (length > int.MaxValue || at + 12 + length > b.Length)
                throw new DatasetException(file, entry, $"does not decode: it is cut short or damaged: the chunk at byte {at} claims {length} bytes, the file has {b.Length - at - 12} after its header", fix);
            var typeAndData = b.Slice((int)at + 4, 4 + (int)length);
            uint stored = BinaryPrimitives.ReadUInt32BigEndian(b.Slice((int)(at + 8 + length), 4));
            uint computed = PngEncoder.Crc(0xFFFFFFFFu, typeAndData) ^ 0xFFFFFFFFu;
            var type = System.Text.Encoding.ASCII.GetString(typeAndData[..4]);
            // IHDR is left to the header checks, which name the wrong field (size, colour type) more precisely.
            if (stored != computed && type != "IHDR")
                throw new DatasetException(file, entry, $"does not decode: chunk '{type}' at byte {at} is damaged (its CRC-32 check fails: stored {stored:x8}, computed {computed:x8})", fix);
            at += 12 + length;
            if (type == "IEND") return; // bytes after IEND are ignored, as every decoder does
        }
    }
}
