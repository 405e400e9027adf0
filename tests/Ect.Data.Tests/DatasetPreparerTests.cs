using System.IO.Compression;
using System.Text.Json;
using Ect.Data.Sources;
using FluentAssertions;
using Xunit;

namespace Ect.Data.Tests;

public class DatasetPreparerTests
{
    private sealed class Recorder : IProgress<(int done, int total)>
    {
        public readonly List<(int, int)> Reports = new();
        public void Report((int done, int total) value) => Reports.Add(value);
    }

    [Fact]
    public void Idx_becomes_an_edm_zip_padded_to_32_with_labels()
    {
        using var t = new TestFiles();
        var src = t.WriteIdx("train", 1030, 28, 28, gz: true);
        var dest = t.PathOf("out.zip");
        var progress = new Recorder();
        var result = DatasetPreparer.Prepare(src, dest, null, null, progress);

        result.Should().BeEquivalentTo(new { Images = 1030, Channels = 1, Resolution = 32, ClassCount = 10 }, o => o.ExcludingMissingMembers());
        progress.Reports[^1].Should().Be((1030, 1030));
        progress.Reports.Select(r => r.Item1).Should().BeInAscendingOrder();
        File.Exists(dest + ".partial").Should().BeFalse();

        using (var zip = ZipFile.OpenRead(dest))
        {
            zip.Entries.Select(e => e.FullName).Should().Contain(["00000/img00000000.png", "00001/img00001029.png", "dataset.json"]);
            zip.Entries.Where(e => e.FullName.EndsWith(".png")).Should().OnlyContain(e => e.CompressedLength == e.Length, "PNGs are stored, as dataset_tool");
            using var r = new StreamReader(zip.GetEntry("dataset.json")!.Open());
            var labels = JsonDocument.Parse(r.ReadToEnd()).RootElement.GetProperty("labels");
            labels.GetArrayLength().Should().Be(1030);
            labels[1029][0].GetString().Should().Be("00001/img00001029.png");
            labels[1029][1].GetInt32().Should().Be(1029 % 10);
        }

        using var ds = DatasetSource.Load(dest);
        (ds.Count, ds.Channels, ds.Height, ds.Width).Should().Be((1030, 1, 32, 32));
        ds.GetLabel(1029).Should().Be(9);
        var img = ds.GetImage(1029);
        img[0].Should().Be(0, "padding is black, as dataset_tool pads MNIST");
        img[2 * 32 + 2].Should().Be(TestFiles.Pixel(1029, 0));
        img[(2 + 27) * 32 + 2 + 27].Should().Be(TestFiles.Pixel(1029, 27 * 28 + 27));
    }

    [Fact]
    public void Output_is_byte_identical_between_runs_and_max_images_is_honoured()
    {
        using var t = new TestFiles();
        var src = t.WriteCifarFolder(perFile: 4);
        DatasetPreparer.Prepare(src, t.PathOf("a.zip"), null, 7, null);
        DatasetPreparer.Prepare(src, t.PathOf("b.zip"), null, 7, null);
        File.ReadAllBytes(t.PathOf("a.zip")).Should().Equal(File.ReadAllBytes(t.PathOf("b.zip")));
        using var ds = DatasetSource.Load(t.PathOf("a.zip"));
        ds.Count.Should().Be(7);
        using var orig = DatasetSource.Load(src);
        ds.GetImage(6).ToArray().Should().Equal(orig.GetImage(6).ToArray(), "PNG export is lossless");
    }

    [Fact]
    public void Cifar_resized_to_16_keeps_three_channels_and_mean_colour()
    {
        using var t = new TestFiles();
        var src = t.WriteCifarFolder(perFile: 1);
        DatasetPreparer.Prepare(src, t.PathOf("c16.zip"), 16, null, null);
        using var ds = DatasetSource.Load(t.PathOf("c16.zip"));
        using var orig = DatasetSource.Load(src);
        (ds.Channels, ds.Height).Should().Be((3, 16));
        ds.GetImage(0).ToArray().Select(b => (double)b).Average().Should().BeApproximately(orig.GetImage(0).ToArray().Select(b => (double)b).Average(), 6);
    }

    [Fact]
    public void Mixed_size_folder_needs_a_resolution_and_works_with_one()
    {
        using var t = new TestFiles();
        t.WriteFile("imgs/a.png", TestFiles.Png(0, 3, 8));
        t.WriteFile("imgs/b.png", TestFiles.Png(1, 3, 24, 16));
        var act = () => DatasetPreparer.Prepare(t.PathOf("imgs"), t.PathOf("x.zip"), null, null, null);
        act.Should().Throw<DatasetException>().WithMessage("*16x24 but 'a.png' is 8x8*--resolution*");
        File.Exists(t.PathOf("x.zip")).Should().BeFalse();
        File.Exists(t.PathOf("x.zip.partial")).Should().BeFalse("a failed run leaves nothing behind");

        DatasetPreparer.Prepare(t.PathOf("imgs"), t.PathOf("y.zip"), 8, null, null);
        using var ds = DatasetSource.Load(t.PathOf("y.zip"));
        (ds.Count, ds.Height, ds.Width).Should().Be((2, 8, 8));
    }

    [Fact]
    public void A_resolution_the_network_cannot_take_is_refused_before_any_work()
    {
        using var t = new TestFiles();
        var src = t.WriteIdx("train", 3, 28, 28, gz: false);
        var act = () => DatasetPreparer.Prepare(src, t.PathOf("o.zip"), 28, null, null);
        act.Should().Throw<DatasetException>().WithMessage("--resolution 28: resolution 28*power of two*Pass --resolution 32*");
    }

    [Fact]
    public void A_non_power_of_two_source_without_resolution_is_refused()
    {
        using var t = new TestFiles();
        t.WriteFile("imgs/a.png", TestFiles.Png(0, 3, 12));
        var act = () => DatasetPreparer.Prepare(t.PathOf("imgs"), t.PathOf("o.zip"), null, null, null);
        act.Should().Throw<DatasetException>().WithMessage("*resolution 12*Pass --resolution 16*");
    }

    [Fact]
    public void Writes_a_folder_destination_that_edm_layout_readers_accept()
    {
        using var t = new TestFiles();
        var src = t.WriteIdx("train", 5, 28, 28, gz: false);
        var dest = t.PathOf("outdir");
        DatasetPreparer.Prepare(src, dest, null, null, null);
        File.Exists(Path.Combine(dest, "00000", "img00000004.png")).Should().BeTrue();
        using var ds = DatasetSource.Load(dest);
        ds.Labels.ToArray().Should().Equal(0, 1, 2, 3, 4);
    }

    [Fact]
    public void Missing_source_is_named()
    {
        using var t = new TestFiles();
        var act = () => DatasetPreparer.Prepare(t.PathOf("nope"), t.PathOf("o.zip"), null, null, null);
        act.Should().Throw<DatasetException>().Where(e => e.FilePath == t.PathOf("nope")).WithMessage("*does not exist*");
    }

    [Fact]
    public void Archive_names_follow_dataset_tool()
    {
        DatasetPreparer.ArchiveName(0).Should().Be("00000/img00000000.png");
        DatasetPreparer.ArchiveName(59999).Should().Be("00059/img00059999.png");
    }
}
