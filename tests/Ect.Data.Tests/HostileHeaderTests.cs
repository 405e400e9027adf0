using System.Buffers.Binary;
using System.Formats.Tar;
using System.IO.Compression;
using System.Text;
using Ect.Data.Imaging;
using Ect.Data.Sources;
using FluentAssertions;
using SkiaSharp;
using Xunit;

namespace Ect.Data.Tests;

/// <summary>
/// Headers that claim sizes the file cannot back (issue 12, point 2): each is crafted here, checked to really claim
/// what it claims (the decoder or the format reads that size), and must end in a <see cref="DatasetException"/>
/// naming the file and the size, before anything is allocated for it. Before the fix a 65536 x 65537 PNG made the
/// native decoder write past a short buffer (SIGSEGV: this test process would die) and 30000 x 30000 threw an
/// OverflowException.
/// </summary>
public class HostileHeaderTests
{
    // ---- crafting ----

    private static readonly uint[] CrcTable = Enumerable.Range(0, 256).Select(n =>
    {
        uint c = (uint)n;
        for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    private static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint c = 0xFFFFFFFFu;
        foreach (var b in data) c = CrcTable[(c ^ b) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFFu;
    }

    /// <summary>A real 1 x 1 PNG whose IHDR (with a valid CRC) claims <paramref name="width"/> x <paramref name="height"/>.</summary>
    public static byte[] PngClaiming(uint width, uint height, int channels)
    {
        var png = PngEncoder.EncodeChw(new byte[channels], channels, 1, 1);
        Encoding.ASCII.GetString(png, 12, 4).Should().Be("IHDR");
        BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(16), width);
        BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(20), height);
        BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(29), Crc32(png.AsSpan(12, 17)));
        return png;
    }

    /// <summary>A real 8 x 8 JPEG (libjpeg-turbo reads at most 65500 a side) whose SOF0 header claims <paramref name="width"/> x <paramref name="height"/>.</summary>
    private static byte[] JpegClaiming(ushort width, ushort height)
    {
        using var bmp = new SKBitmap(new SKImageInfo(8, 8, SKColorType.Rgba8888, SKAlphaType.Opaque));
        bmp.Erase(new SKColor(120, 30, 200));
        using var img = SKImage.FromBitmap(bmp);
        using var data = img.Encode(SKEncodedImageFormat.Jpeg, 90);
        var jpg = data.ToArray();
        int sof = -1;
        for (int i = 2; i + 1 < jpg.Length; i++) if (jpg[i] == 0xFF && jpg[i + 1] is 0xC0 or 0xC1 or 0xC2) { sof = i; break; }
        sof.Should().BePositive("the encoder writes a SOF header");
        BinaryPrimitives.WriteUInt16BigEndian(jpg.AsSpan(sof + 5), height);
        BinaryPrimitives.WriteUInt16BigEndian(jpg.AsSpan(sof + 7), width);
        return jpg;
    }

    /// <summary>The size SkiaSharp's codec reads from the header: the claim reaches the native decoder as crafted.</summary>
    private static (int W, int H) CodecSize(byte[] bytes)
    {
        using var d = SKData.CreateCopy(bytes);
        using var codec = SKCodec.Create(d);
        codec.Should().NotBeNull("the crafted header must parse, or the test proves nothing");
        return (codec!.Info.Width, codec.Info.Height);
    }

    /// <summary>Runs <paramref name="act"/>, expecting a DatasetException, and returns it with the bytes the thread allocated meanwhile.</summary>
    private static (DatasetException Error, long Allocated) Refused(Action act)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        DatasetException? caught = null;
        try { act(); }
        catch (DatasetException e) { caught = e; }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        caught.Should().NotBeNull("the crafted header must be refused with a DatasetException");
        return (caught!, allocated);
    }

    // ---- images ----

    [Theory]
    [InlineData(65536u, 65537u, 3)] // 3*h*w wraps to a small int: the SIGSEGV of the report
    [InlineData(30000u, 30000u, 3)] // 3*h*w negative: the OverflowException
    [InlineData(65536u, 32768u, 1)] // grayscale: h*w = 2^31 wraps negative
    [InlineData(16385u, 16u, 3)]    // one side over the limit, few pixels
    [InlineData(0x7FFFFFFFu, 0x7FFFFFFFu, 3)]
    public void A_png_header_claiming_a_huge_image_is_refused_naming_the_file_and_size(uint w, uint h, int channels)
    {
        var png = PngClaiming(w, h, channels);
        if (w <= 65536 && h <= 65537) CodecSize(png).Should().Be(((int)w, (int)h));
        using var t = new TestFiles();
        var file = t.WriteFile("imgs/huge.png", png);
        t.WriteFile("imgs/ok.png", TestFiles.Png(1, channels, 8));

        var (e, allocated) = Refused(() => ImageDecoder.Decode(png, file, null));
        e.Message.Should().Contain(file).And.Contain($"{w}x{h}");
        allocated.Should().BeLessThan(1 << 20, "the size is refused before any pixel buffer exists");

        // The `ect train` path: the folder loaded as a dataset.
        var (e2, _) = Refused(() => DatasetSource.Load(Path.Combine(t.Dir, "imgs")).Dispose());
        e2.Message.Should().Contain("huge.png").And.Contain($"{w}x{h}");
    }

    [Fact]
    public void A_jpeg_header_claiming_65500_x_65500_is_refused_inside_a_zip()
    {
        var jpg = JpegClaiming(65500, 65500);
        CodecSize(jpg).Should().Be((65500, 65500));
        using var t = new TestFiles();
        var zip = t.WriteZip("set.zip", [("00000/img00000000.jpg", jpg)]);
        var (e, allocated) = Refused(() => DatasetSource.Load(zip).Dispose());
        e.Message.Should().Contain(zip).And.Contain("00000/img00000000.jpg").And.Contain("65500x65500");
        allocated.Should().BeLessThan(16 << 20);
    }

    [Fact]
    public void An_image_at_the_limit_still_decodes()
    {
        // 16384 x 16 RGB: within both limits, decoded for real (the limit is not off by one).
        var px = new byte[3 * 16 * 16384];
        var png = PngEncoder.EncodeChw(px, 3, 16, 16384);
        var (c, h, w, chw) = ImageDecoder.Decode(png, "edge.png", null);
        (c, h, w, chw.Length).Should().Be((3, 16, 16384, 3 * 16 * 16384));
    }

    // ---- zip directory sizes ----

    /// <summary>Sets an entry's uncompressed size in the zip's local header and central directory.</summary>
    private static void ClaimZipEntrySize(string zipPath, string entry, uint size)
    {
        var b = File.ReadAllBytes(zipPath);
        var name = Encoding.ASCII.GetBytes(entry);
        int patched = 0;
        for (int i = 0; i + 46 < b.Length; i++)
        {
            uint sig = BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(i));
            if (sig == 0x04034b50 && b.AsSpan(i + 30, name.Length).SequenceEqual(name)) { BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(i + 22), size); patched++; }
            if (sig == 0x02014b50 && b.AsSpan(i + 46, name.Length).SequenceEqual(name)) { BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(i + 24), size); patched++; }
        }
        patched.Should().Be(2, "the local header and the central directory entry");
        File.WriteAllBytes(zipPath, b);
    }

    [Fact]
    public void A_zip_whose_dataset_json_claims_4_GB_is_refused_before_reading_it()
    {
        using var t = new TestFiles();
        var zip = t.WriteZip("set.zip", [("00000/img00000000.png", TestFiles.Png(1, 3, 8)), ("dataset.json", Encoding.UTF8.GetBytes("{\"labels\": null}"))]);
        ClaimZipEntrySize(zip, "dataset.json", 0xFFFFFFF0u);
        using (var z = ZipFile.OpenRead(zip)) z.GetEntry("dataset.json")!.Length.Should().Be(0xFFFFFFF0u, "the claim is what .NET reads");
        var (e, allocated) = Refused(() => DatasetSource.Load(zip).Dispose());
        e.Message.Should().Contain(zip).And.Contain("dataset.json").And.Contain("4,294,967,280");
        allocated.Should().BeLessThan(16 << 20);
    }

    [Fact]
    public void A_zip_entry_claiming_4_GB_or_lying_small_is_refused()
    {
        using var t = new TestFiles();
        var big = t.WriteZip("big.zip", [("00000/img00000000.png", TestFiles.Png(1, 3, 8))]);
        ClaimZipEntrySize(big, "00000/img00000000.png", 0xFFFFFFF0u);
        var (e, allocated) = Refused(() => DatasetSource.Load(big).Dispose());
        e.Message.Should().Contain("00000/img00000000.png").And.Contain("4,294,967,280");
        allocated.Should().BeLessThan(16 << 20);

        // A size smaller than the data: never read past the claim; what it cuts off makes the image undecodable.
        var png = TestFiles.Png(1, 3, 8);
        var small = t.WriteZip("small.zip", [("00000/img00000000.png", png)]);
        ClaimZipEntrySize(small, "00000/img00000000.png", (uint)png.Length / 2);
        Refused(() => DatasetSource.Load(small).Dispose()).Error.Message.Should().Contain("00000/img00000000.png");
    }

    // ---- IDX ----

    [Theory]
    [InlineData(1, 65536, 65536, false)]       // a side over the image limit
    [InlineData(60000, 16384, 16384, false)]    // 1.6e13 bytes: the 64-bit product, no wrap-around
    [InlineData(50000, 200, 200, false)]        // 2e9 bytes, under the array limit: the file's length decides
    [InlineData(50000, 200, 200, true)]         // gzipped: more than deflate's 1032:1 can hold
    public void An_idx_header_claiming_more_than_the_file_holds_is_refused_before_allocating(int n, int h, int w, bool gz)
    {
        using var t = new TestFiles();
        var bytes = TestFiles.IdxBytes(2051, [n, h, w], new byte[100]);
        var path = t.WriteFile("train-images-idx3-ubyte" + (gz ? ".gz" : ""), gz ? TestFiles.Gzip(bytes) : bytes);
        var (e, allocated) = Refused(() => DatasetSource.Load(path).Dispose());
        e.Message.Should().Contain(path).And.ContainAny($"{h}", $"{(long)n * h * w}", $"{(long)n * h * w:N0}");
        allocated.Should().BeLessThan(16 << 20, "nothing is allocated for a claim the file cannot back");
    }

    // ---- CIFAR-10 ----

    [Fact]
    public void A_cifar_tar_entry_claiming_8_GB_is_refused_before_reading()
    {
        using var t = new TestFiles();
        var tarPath = t.PathOf("cifar.tar");
        using (var fs = File.Create(tarPath))
        using (var tw = new TarWriter(fs, TarEntryFormat.Ustar, leaveOpen: false))
        {
            var entry = new UstarTarEntry(TarEntryType.RegularFile, "cifar-10-batches-bin/data_batch_1.bin")
            { DataStream = new MemoryStream(TestFiles.CifarBatch(2, 0)) };
            tw.WriteEntry(entry);
        }
        var tar = File.ReadAllBytes(tarPath);
        // Size field (12 bytes of octal at 124) = 8 GB, the most 11 octal digits hold; checksum (8 bytes at 148) recomputed over the header.
        Encoding.ASCII.GetBytes("77777777777\0").CopyTo(tar, 124);
        for (int i = 148; i < 156; i++) tar[i] = (byte)' ';
        int sum = 0;
        for (int i = 0; i < 512; i++) sum += tar[i];
        Encoding.ASCII.GetBytes(Convert.ToString(sum, 8).PadLeft(6, '0') + "\0 ").CopyTo(tar, 148);
        var gzPath = t.WriteFile("cifar-10-binary.tar.gz", TestFiles.Gzip(tar));
        using (var check = new TarReader(new GZipStream(File.OpenRead(gzPath), CompressionMode.Decompress)))
            check.GetNextEntry()!.Length.Should().Be(8_589_934_591L, "the crafted size is what the tar reader sees");
        var (e, allocated) = Refused(() => DatasetSource.Load(gzPath).Dispose());
        e.Message.Should().Contain(gzPath).And.Contain("data_batch_1.bin").And.Contain("8,589,934,591");
        allocated.Should().BeLessThan(16 << 20);
    }

    [Fact]
    public void A_cifar_batch_file_larger_than_the_limit_is_refused_before_reading()
    {
        using var t = new TestFiles();
        var folder = t.WriteCifarFolder(2);
        var batch = Path.Combine(folder, "cifar-10-batches-bin", "data_batch_3.bin");
        // Sparse: the file system reports the length without the bytes being written.
        using (var fs = new FileStream(batch, FileMode.Open)) fs.SetLength(Cifar10Source.MaxBatchBytes + Cifar10Source.RecordBytes);
        var (e, allocated) = Refused(() => DatasetSource.Load(folder).Dispose());
        e.Message.Should().Contain("data_batch_3.bin").And.Contain($"{Cifar10Source.MaxBatchBytes + Cifar10Source.RecordBytes:N0}");
        allocated.Should().BeLessThan(64 << 20, "the five small batch files only");
    }

    // ---- the raw cache ----

    [Theory]
    [InlineData(int.MaxValue, 3, 32, 32, 1)]   // labels for 2^31 images in a tiny file
    [InlineData(10, 3, 65536, 65537, 0)]      // the PNG's size again
    [InlineData(10, 1000, 32, 32, 0)]         // not a channel count
    [InlineData(-5, 3, 32, 32, 0)]
    public void A_raw_cache_header_claiming_what_the_file_does_not_hold_is_refused(int count, int c, int h, int w, int hasLabels)
    {
        using var t = new TestFiles();
        var path = t.PathOf("cache.raw");
        using (var fs = File.Create(path))
        using (var bw = new BinaryWriter(fs))
        {
            bw.Write("ECTRAW01".ToCharArray());
            bw.Write(count); bw.Write(c); bw.Write(h); bw.Write(w); bw.Write(10); bw.Write(hasLabels == 1);
            bw.Write(new byte[8192]);
        }
        var (e, allocated) = Refused(() => ImageDataset.OpenMapped(path).Dispose());
        e.Message.Should().Contain(path).And.Contain($"{count} images of {c}x{h}x{w}");
        allocated.Should().BeLessThan(1 << 20);
    }
}
