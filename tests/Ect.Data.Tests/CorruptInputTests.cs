using Ect.Data.Sources;
using FluentAssertions;
using Xunit;

namespace Ect.Data.Tests;

/// <summary>Damaged files of every kind end in a DatasetException (or load), never in another exception type.</summary>
public class CorruptInputTests
{
    /// <summary>True when the file was refused with a DatasetException naming it; false when it loaded. Any other exception fails.</summary>
    private static bool RefusedClearly(string path, string label)
    {
        try
        {
            using var ds = DatasetSource.Load(path);
            return false;
        }
        catch (DatasetException e)
        {
            e.Message.Should().Contain(Path.GetFileName(e.FilePath), label);
            return true;
        }
        catch (Exception e)
        {
            throw new Xunit.Sdk.XunitException($"{label}: {e.GetType().Name} escaped instead of DatasetException: {e.Message}");
        }
    }

    [Fact]
    public void Damaged_idx_files_are_refused_clearly()
    {
        using var t = new TestFiles();
        var good = File.ReadAllBytes(t.WriteIdx("train", 20, 8, 8, gz: false));
        var rng = new SplitMix64(5);
        var loaded = new List<int>();
        for (int k = 0; k < 40; k++)
        {
            var bad = (byte[])good.Clone();
            if (k % 2 == 0) bad = bad[..(int)rng.NextBelow((uint)bad.Length)];
            else bad[rng.NextBelow(16)] ^= (byte)(1 + rng.NextBelow(255));
            var path = t.WriteFile($"c{k}/train-images-idx3-ubyte" + (k % 4 == 1 ? ".gz" : ""), k % 4 == 1 ? TestFiles.Gzip(bad) : bad);
            if (!RefusedClearly(path, $"case {k}")) loaded.Add(k);
        }
        loaded.Should().BeEmpty("every damaged IDX file (cut short, or a changed header byte) must be refused");
    }

    [Fact]
    public void Damaged_pngs_in_a_zip_are_refused_clearly()
    {
        using var t = new TestFiles();
        var good = TestFiles.Png(3, 3, 16);
        var rng = new SplitMix64(9);
        var loaded = new List<int>();
        for (int k = 0; k < 40; k++)
        {
            var bad = (byte[])good.Clone();
            if (k % 2 == 0) bad = bad[..(int)rng.NextBelow((uint)bad.Length)];
            else for (int f = 0; f < 3; f++) bad[rng.NextBelow((uint)bad.Length)] ^= 0x5A;
            var zip = t.WriteZip($"c{k}.zip", [("00000/img00000000.png", good), ("00000/img00000001.png", bad)]);
            if (!RefusedClearly(zip, $"case {k}")) loaded.Add(k);
        }
        loaded.Should().BeEmpty("every damaged PNG (cut short, or bytes changed) must be refused");
    }

    [Fact]
    public void A_png_cut_short_after_its_image_data_is_refused_though_the_decoder_would_take_it()
    {
        using var t = new TestFiles();
        var good = TestFiles.Png(3, 3, 16);
        var noEnd = good[..^12]; // IEND (length, type, CRC) missing: every pixel is still there
        var zip = t.WriteZip("cut.zip", [("00000/img00000000.png", good), ("00000/img00000001.png", noEnd)]);
        var act = () => DatasetSource.Load(zip);
        act.Should().Throw<DatasetException>().Where(e => e.Entry == "00000/img00000001.png").WithMessage("*does not decode*cut short*no IEND*");
    }

    [Fact]
    public void A_png_whose_chunk_fails_its_crc_is_refused_naming_the_chunk()
    {
        using var t = new TestFiles();
        var bad = TestFiles.Png(3, 3, 16);
        bad[^1] ^= 0x01; // the last byte of IEND's CRC
        var zip = t.WriteZip("crc.zip", [("00000/img00000000.png", bad)]);
        var act = () => DatasetSource.Load(zip);
        act.Should().Throw<DatasetException>().WithMessage("*chunk 'IEND'*damaged*CRC-32*");
    }

    [Fact]
    public void Truncated_zip_is_refused()
    {
        using var t = new TestFiles();
        var zip = t.WriteZip("d.zip", Enumerable.Range(0, 5).Select(i => (DatasetPreparer.ArchiveName(i), TestFiles.Png(i, 1, 8))));
        var bytes = File.ReadAllBytes(zip);
        File.WriteAllBytes(zip, bytes[..(bytes.Length * 2 / 3)]);
        var act = () => DatasetSource.Open(zip);
        act.Should().Throw<DatasetException>().Where(e => e.FilePath == zip).WithMessage("*not a zip archive, or is cut short*");
    }

    [Fact]
    public void Zip_without_images_is_an_empty_dataset()
    {
        using var t = new TestFiles();
        var zip = t.WriteZip("d.zip", [("dataset.json", """{"labels": null}"""u8.ToArray())]);
        var act = () => DatasetSource.Open(zip);
        act.Should().Throw<DatasetException>().WithMessage("*empty: no image files*");
    }

    [Fact]
    public void Max_images_zero_is_refused()
    {
        using var t = new TestFiles();
        var src = t.WriteIdx("train", 3, 28, 28, gz: false);
        var act = () => DatasetPreparer.Prepare(src, t.PathOf("o.zip"), null, 0, null);
        act.Should().Throw<DatasetException>().WithMessage("*--max-images 0*");
    }

    [Fact]
    public void Corrupt_dataset_json_is_refused()
    {
        using var t = new TestFiles();
        var zip = t.WriteZip("d.zip", [("a.png", TestFiles.Png(0, 3, 8)), ("dataset.json", "{\"labels\": [[\"a.png\""u8.ToArray())]);
        var act = () => DatasetSource.Open(zip);
        act.Should().Throw<DatasetException>().Where(e => e.Entry == "dataset.json").WithMessage("*not valid JSON*");
    }
}
