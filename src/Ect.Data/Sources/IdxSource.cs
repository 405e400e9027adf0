using System.Buffers.Binary;
using System.IO.Compression;

namespace Ect.Data.Sources;

/// <summary>
/// MNIST-style IDX files (MNIST, Fashion-MNIST), gzipped or not (detected from the gzip magic bytes, not the name).
/// Images: magic 2051 (0x00000803: unsigned bytes, 3 dimensions N x H x W); labels: magic 2049 (0x00000801, N).
/// The label file is found by name: train-images-idx3-ubyte(.gz) pairs with train-labels-idx1-ubyte(.gz)
/// (also the "train-images.idx3-ubyte" spelling); without a label file the set is unlabelled.
/// </summary>
public sealed class IdxSource : IImageSource
{
    private readonly byte[] _images;
    private readonly byte[]? _labels;
    private readonly int _height, _width;

    public string Path { get; }
    public string? LabelPath { get; }
    public string Format => "IDX (MNIST format)";
    public int Count { get; }
    public bool HasLabels => _labels is not null;
    public IReadOnlyList<string>? ClassNames => null;

    public IdxSource(string imagesPath, string? labelsPath = null)
    {
        Path = imagesPath;
        labelsPath ??= FindLabelFile(imagesPath);
        LabelPath = labelsPath;
        var (dims, data) = ReadIdx(imagesPath, expectedDims: 3, "images");
        Count = dims[0]; _height = dims[1]; _width = dims[2];
        _images = data;
        if (Count == 0)
            throw new DatasetException(imagesPath, "the IDX header says the file holds 0 images (empty dataset)", "Use a file that holds images");
        if (labelsPath is not null)
        {
            var (ldims, ldata) = ReadIdx(labelsPath, expectedDims: 1, "labels");
            if (ldims[0] != Count)
                throw new DatasetException(labelsPath,
                    $"holds {ldims[0]} labels but {System.IO.Path.GetFileName(imagesPath)} holds {Count} images",
                    "Pair each images file with the labels file of the same split (train with train, t10k with t10k) and re-download if one is cut short");
            _labels = ldata;
        }
    }

    /// <summary>The labels file that pairs with an images file, or null when none exists next to it.</summary>
    public static string? FindLabelFile(string imagesPath)
    {
        var dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(imagesPath))!;
        var name = System.IO.Path.GetFileName(imagesPath);
        if (!name.Contains("images", StringComparison.OrdinalIgnoreCase)) return null;
        var stem = name.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? name[..^3] : name;
        var labelStem = stem.Replace("images", "labels", StringComparison.OrdinalIgnoreCase)
                            .Replace("idx3", "idx1", StringComparison.OrdinalIgnoreCase);
        foreach (var candidate in new[] { labelStem, labelStem + ".gz" })
        {
            var p = System.IO.Path.Combine(dir, candidate);
            if (File.Exists(p)) return p;
        }
        return null;
    }

    /// <summary>True when the file starts with an IDX or gzip header and is named like an IDX file.</summary>
    public static bool LooksLikeIdx(string path)
    {
        var name = System.IO.Path.GetFileName(path).ToLowerInvariant();
        return name.Contains("idx") || name.EndsWith(".gz") && !name.EndsWith(".tar.gz");
    }

    /// <summary>Reads an IDX file of unsigned bytes: its dimensions and its data, checking magic, dimension count and length.</summary>
    public static (int[] Dims, byte[] Data) ReadIdx(string path, int expectedDims, string what)
    {
        if (!File.Exists(path))
            throw new DatasetException(path, $"the IDX {what} file does not exist", "Check the path (e.g. /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz; apt-get install dataset-fashion-mnist)");
        try
        {
            using var raw = File.OpenRead(path);
            bool gz = raw.Length >= 2 && raw.ReadByte() == 0x1f && raw.ReadByte() == 0x8b;
            raw.Position = 0;
            using Stream s = gz ? new GZipStream(raw, CompressionMode.Decompress) : raw;
            Span<byte> head = stackalloc byte[4];
            int got = ReadFully(s, head);
            if (got < 4)
                throw new DatasetException(path, $"truncated: {got} bytes where the 4-byte IDX magic number should be", "Re-download the file");
            int magic = BinaryPrimitives.ReadInt32BigEndian(head);
            int dataType = head[2], nd = head[3];
            if (head[0] != 0 || head[1] != 0 || dataType != 0x08)
                throw new DatasetException(path,
                    $"wrong IDX magic number {magic} (0x{magic:X8}); an IDX {what} file of unsigned bytes starts with {0x800 + expectedDims} (0x{0x800 + expectedDims:X8})",
                    gz ? "The file is gzipped but its content is not an IDX file: check it is the MNIST-format file" : "Check it is an MNIST-format IDX file (gzipped or not)");
            if (nd != expectedDims)
                throw new DatasetException(path,
                    $"IDX {what} file with {nd} dimension(s) (magic {magic}); {what} need {expectedDims} ({(expectedDims == 3 ? "count x height x width, magic 2051" : "count, magic 2049")})",
                    expectedDims == 3 ? "Pass the images file (…-images-idx3-ubyte), not the labels file" : "Pass the labels file (…-labels-idx1-ubyte) that goes with the images");
            var dimBytes = new byte[4 * nd];
            got = ReadFully(s, dimBytes);
            if (got < dimBytes.Length)
                throw new DatasetException(path, $"truncated inside the IDX header ({4 + got} of {4 + dimBytes.Length} header bytes)", "Re-download the file");
            var dims = new int[nd];
            long total = 1;
            for (int i = 0; i < nd; i++)
            {
                dims[i] = BinaryPrimitives.ReadInt32BigEndian(dimBytes.AsSpan(4 * i));
                if (dims[i] < 0 || (i > 0 && dims[i] == 0))
                    throw new DatasetException(path, $"IDX dimension {i} is {dims[i]}", "The header is corrupt: re-download the file");
                if (i > 0 && dims[i] > Imaging.ImageDecoder.MaxSide)
                    throw new DatasetException(path, $"the IDX header gives an image {(i == 1 ? "height" : "width")} of {dims[i]} pixels; at most {Imaging.ImageDecoder.MaxSide} a side are read",
                        "The header is corrupt or crafted: re-download the file");
                // Checked 64-bit product, tested per dimension so it stays below 2^31 * 2^31.
                total = checked(total * dims[i]);
                if (total > Array.MaxLength)
                    throw new DatasetException(path, $"the IDX header's dimensions [{string.Join(", ", dims[..(i + 1)])}...] ask for more than {Array.MaxLength} bytes",
                        "The header is corrupt (or the set too large for one file): re-download the file");
            }
            // The header's claim against what the file can hold, before allocating for it: the bytes after the header
            // (plain file), or deflate's best ratio of 1032:1 (gzip), so a 100-byte file cannot ask for 2 GB.
            long header = 4 + 4L * nd;
            long available = gz ? checked(raw.Length * 1032) : raw.Length - header;
            if (total > available)
            {
                long per = nd > 1 ? total / Math.Max(1, dims[0]) : 1;
                throw new DatasetException(path,
                    gz ? $"the IDX header says {dims[0]} {what} ({total:N0} data bytes), more than a {raw.Length:N0}-byte gzip file can hold"
                       : $"truncated: the header says {dims[0]} {what} ({total} data bytes) but the file holds only {available} ({available / per} whole {what})",
                    gz ? "The header is corrupt or the download cut short: re-download the file" : "The download was cut short: re-download the file");
            }
            var data = GC.AllocateUninitializedArray<byte>(checked((int)total));
            got = ReadFully(s, data);
            if (got < total)
            {
                long per = nd > 1 ? total / Math.Max(1, dims[0]) : 1;
                throw new DatasetException(path,
                    $"truncated: the header says {dims[0]} {what} ({total} data bytes) but the file holds only {got} ({got / per} whole {what})",
                    "The download was cut short: re-download the file");
            }
            if (s.ReadByte() >= 0)
                throw new DatasetException(path, $"holds more data than its IDX header says ({total} data bytes for {dims[0]} {what})",
                    "The header or the file is corrupt: re-download the file");
            return (dims, data);
        }
        catch (InvalidDataException e)
        {
            throw new DatasetException(path, $"corrupt gzip data ({e.Message})", "Re-download the file, or gunzip it and check it", e);
        }
        catch (EndOfStreamException e)
        {
            throw new DatasetException(path, "truncated gzip stream", "Re-download the file", e);
        }
    }

    private static int ReadFully(Stream s, Span<byte> buffer)
    {
        int total = 0;
        while (total < buffer.Length)
        {
            int n = s.Read(buffer[total..]);
            if (n == 0) break;
            total += n;
        }
        return total;
    }

    public IEnumerable<SourceImage> Read(int? max = null)
    {
        int n = Math.Min(Count, max ?? Count);
        int size = _height * _width; // <= the file's data length (checked when read)
        for (int i = 0; i < n; i++)
        {
            var px = _images.AsSpan(checked(i * size), size).ToArray();
            yield return new SourceImage($"{System.IO.Path.GetFileName(Path)}[{i}]", 1, _height, _width, px, _labels is null ? -1 : _labels[i]);
        }
    }

    public void Dispose() { }
}
