using System.Buffers.Binary;
using System.Formats.Tar;
using System.IO.Compression;
using Ect.Data.Imaging;
using Xunit;

namespace Ect.Data.Tests;

/// <summary>A temporary folder plus writers for small dataset files in every supported format.</summary>
public sealed class TestFiles : IDisposable
{
    public string Dir { get; } = Directory.CreateTempSubdirectory("ect-data-test-").FullName;

    public string PathOf(string name) => System.IO.Path.Combine(Dir, name);

    public void Dispose()
    {
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { }
    }

    /// <summary>Deterministic pixel pattern: image i, byte j.</summary>
    public static byte Pixel(int image, int j) => (byte)((image * 37 + j * 11) % 256);

    public static byte[] IdxBytes(int magic, int[] dims, byte[] data)
    {
        var b = new byte[4 + 4 * dims.Length + data.Length];
        BinaryPrimitives.WriteInt32BigEndian(b, magic);
        for (int i = 0; i < dims.Length; i++) BinaryPrimitives.WriteInt32BigEndian(b.AsSpan(4 + 4 * i), dims[i]);
        data.CopyTo(b, 4 + 4 * dims.Length);
        return b;
    }

    public static byte[] Gzip(byte[] data)
    {
        using var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, CompressionLevel.Fastest)) gz.Write(data);
        return ms.ToArray();
    }

    /// <summary>Writes {prefix}-images-idx3-ubyte[.gz] and {prefix}-labels-idx1-ubyte[.gz]; returns the images path.</summary>
    public string WriteIdx(string prefix, int count, int h, int w, bool gz, int? labelCount = null, int classes = 10)
    {
        var px = new byte[count * h * w];
        for (int i = 0; i < count; i++) for (int j = 0; j < h * w; j++) px[i * h * w + j] = Pixel(i, j);
        int lc = labelCount ?? count;
        var labels = new byte[lc];
        for (int i = 0; i < lc; i++) labels[i] = (byte)(i % classes);
        string ext = gz ? ".gz" : "";
        var img = IdxBytes(2051, [count, h, w], px);
        var lab = IdxBytes(2049, [lc], labels);
        File.WriteAllBytes(PathOf($"{prefix}-images-idx3-ubyte{ext}"), gz ? Gzip(img) : img);
        File.WriteAllBytes(PathOf($"{prefix}-labels-idx1-ubyte{ext}"), gz ? Gzip(lab) : lab);
        return PathOf($"{prefix}-images-idx3-ubyte{ext}");
    }

    public static byte[] CifarBatch(int records, int labelOffset)
    {
        var b = new byte[records * 3073];
        for (int r = 0; r < records; r++)
        {
            b[r * 3073] = (byte)((r + labelOffset) % 10);
            for (int j = 0; j < 3072; j++) b[r * 3073 + 1 + j] = Pixel(r + labelOffset, j);
        }
        return b;
    }

    /// <summary>CIFAR-10 binary folder (cifar-10-batches-bin/) with <paramref name="perFile"/> records per batch file.</summary>
    public string WriteCifarFolder(int perFile)
    {
        var dir = Directory.CreateDirectory(PathOf("cifar/cifar-10-batches-bin")).FullName;
        for (int f = 1; f <= 5; f++) File.WriteAllBytes(System.IO.Path.Combine(dir, $"data_batch_{f}.bin"), CifarBatch(perFile, (f - 1) * perFile));
        File.WriteAllBytes(System.IO.Path.Combine(dir, "test_batch.bin"), CifarBatch(perFile, 1000));
        File.WriteAllText(System.IO.Path.Combine(dir, "batches.meta.txt"), "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n");
        return PathOf("cifar");
    }

    public string WriteCifarTarGz(int perFile, string name = "cifar-10-binary.tar.gz")
    {
        var folder = WriteCifarFolder(perFile);
        var path = PathOf(name);
        using (var fs = File.Create(path))
        using (var gz = new GZipStream(fs, CompressionLevel.Fastest))
            TarFile.CreateFromDirectory(folder, gz, includeBaseDirectory: false);
        Directory.Delete(folder, true);
        return path;
    }

    /// <summary>A solid-ish test image, CHW, as PNG bytes.</summary>
    public static byte[] Png(int seed, int channels, int size) => Png(seed, channels, size, size);

    public static byte[] Png(int seed, int channels, int h, int w)
    {
        var px = new byte[channels * h * w];
        for (int j = 0; j < px.Length; j++) px[j] = Pixel(seed, j);
        return PngEncoder.EncodeChw(px, channels, h, w);
    }

    public string WriteFile(string relative, byte[] bytes)
    {
        var p = PathOf(relative);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(p)!);
        File.WriteAllBytes(p, bytes);
        return p;
    }

    public string WriteZip(string name, IEnumerable<(string Entry, byte[] Bytes)> entries)
    {
        var p = PathOf(name);
        using var zip = ZipFile.Open(p, ZipArchiveMode.Create);
        foreach (var (entry, bytes) in entries)
        {
            using var s = zip.CreateEntry(entry).Open();
            s.Write(bytes);
        }
        return p;
    }
}

/// <summary>A Fact that reports "skipped" (with the reason) when the Debian Fashion-MNIST files are not installed.</summary>
public sealed class FashionMnistFactAttribute : FactAttribute
{
    public const string Folder = "/usr/share/datasets/fashion-mnist";

    public FashionMnistFactAttribute()
    {
        if (!File.Exists(System.IO.Path.Combine(Folder, "train-images-idx3-ubyte.gz")))
            Skip = $"Fashion-MNIST not installed ({Folder} missing): apt-get install dataset-fashion-mnist";
    }
}
