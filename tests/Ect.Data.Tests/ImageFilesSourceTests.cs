using Ect.Data.Sources;
using FluentAssertions;
using Xunit;

namespace Ect.Data.Tests;

public class ImageFilesSourceTests
{
    private static IEnumerable<(string, byte[])> EdmEntries(int n, int channels, int size, string? json)
    {
        for (int i = 0; i < n; i++) yield return (DatasetPreparer.ArchiveName(i), TestFiles.Png(i, channels, size));
        if (json is not null) yield return ("dataset.json", System.Text.Encoding.UTF8.GetBytes(json));
    }

    [Fact]
    public void Edm_zip_with_labels_loads_in_name_order()
    {
        using var t = new TestFiles();
        var zip = t.WriteZip("d.zip", EdmEntries(3, 3, 8, """{"labels": [["00000/img00000002.png", 4], ["00000/img00000000.png", 1], ["00000/img00000001.png", 0]]}""").Reverse());
        using var ds = DatasetSource.Load(zip);
        (ds.Count, ds.Channels, ds.Height).Should().Be((3, 3, 8));
        ds.Labels.ToArray().Should().Equal(1, 0, 4);
        ds.ClassCount.Should().Be(5, "EDM takes max label + 1");
        ds.GetImage(2)[70].Should().Be(TestFiles.Pixel(2, 70));
        ds.ImageNames![0].Should().Be("00000/img00000000.png");
    }

    [Fact]
    public void Grayscale_png_loads_as_one_channel()
    {
        using var t = new TestFiles();
        var zip = t.WriteZip("g.zip", EdmEntries(2, 1, 16, null));
        using var ds = DatasetSource.Load(zip);
        ds.Channels.Should().Be(1);
        ds.HasLabels.Should().BeFalse();
        ds.GetImage(1)[33].Should().Be(TestFiles.Pixel(1, 33));
    }

    [Fact]
    public void Labels_that_name_missing_files_are_refused()
    {
        using var t = new TestFiles();
        var zip = t.WriteZip("d.zip", EdmEntries(2, 3, 8, """{"labels": [["00000/img00000000.png", 1], ["00000/img00000001.png", 0], ["00000/img00000009.png", 3]]}"""));
        var act = () => DatasetSource.Open(zip);
        act.Should().Throw<DatasetException>().Where(e => e.FilePath == zip && e.Entry == "dataset.json")
            .WithMessage("*'00000/img00000009.png', which is not an image in the dataset*");
    }

    [Fact]
    public void An_image_without_label_is_refused()
    {
        using var t = new TestFiles();
        var zip = t.WriteZip("d.zip", EdmEntries(2, 3, 8, """{"labels": [["00000/img00000000.png", 1]]}"""));
        var act = () => DatasetSource.Open(zip);
        act.Should().Throw<DatasetException>().WithMessage("*no label for image '00000/img00000001.png'*");
    }

    [Fact]
    public void Png_that_does_not_decode_is_named_with_its_entry()
    {
        using var t = new TestFiles();
        var good = TestFiles.Png(0, 3, 8);
        var zip = t.WriteZip("d.zip", [("a.png", good), ("b.png", good[..40]), ("c.png", "not an image"u8.ToArray())]);
        var act = () => DatasetSource.Load(zip);
        act.Should().Throw<DatasetException>().Where(e => e.Entry == "b.png").WithMessage("*does not decode*");
    }

    [Fact]
    public void Mixed_sizes_are_refused_with_both_names()
    {
        using var t = new TestFiles();
        t.WriteFile("imgs/a.png", TestFiles.Png(0, 3, 8));
        t.WriteFile("imgs/b.png", TestFiles.Png(1, 3, 16));
        var act = () => DatasetSource.Load(t.PathOf("imgs"));
        act.Should().Throw<DatasetException>().Where(e => e.Entry == "b.png")
            .WithMessage("*16x16 but 'a.png' is 8x8*one resolution*--resolution*");
    }

    [Fact]
    public void Mixed_channel_counts_are_refused()
    {
        using var t = new TestFiles();
        var zip = t.WriteZip("d.zip", [("a.png", TestFiles.Png(0, 3, 8)), ("b.png", TestFiles.Png(1, 1, 8))]);
        var act = () => DatasetSource.Load(zip);
        act.Should().Throw<DatasetException>().Where(e => e.Entry == "b.png").WithMessage("*1 channel(s) but 'a.png' has 3*");
    }

    [Fact]
    public void Empty_folder_is_refused()
    {
        using var t = new TestFiles();
        Directory.CreateDirectory(t.PathOf("empty"));
        File.WriteAllText(t.PathOf("empty/readme.txt"), "no images here");
        var act = () => DatasetSource.Open(t.PathOf("empty"));
        act.Should().Throw<DatasetException>().WithMessage("*empty: no image files*");
    }

    [Fact]
    public void A_zip_that_is_not_a_zip_is_refused()
    {
        using var t = new TestFiles();
        var p = t.WriteFile("fake.zip", "PK? not really a zip archive at all, just text"u8.ToArray());
        var act = () => DatasetSource.Open(p);
        act.Should().Throw<DatasetException>().Where(e => e.FilePath == p).WithMessage("*is not a zip archive*");
    }

    [Fact]
    public void Class_subfolders_label_images_by_sorted_folder_name()
    {
        using var t = new TestFiles();
        t.WriteFile("pets/dog/1.png", TestFiles.Png(0, 3, 8));
        t.WriteFile("pets/cat/1.png", TestFiles.Png(1, 3, 8));
        t.WriteFile("pets/cat/2.png", TestFiles.Png(2, 3, 8));
        using var src = DatasetSource.Open(t.PathOf("pets"));
        src.Format.Should().Contain("class");
        using var ds = DatasetSource.Load(src);
        ds.ClassNames.Should().Equal("cat", "dog");
        ds.Labels.ToArray().Should().Equal(0, 0, 1);
    }

    [Fact]
    public void Edm_folder_without_json_is_unlabelled_not_class_folders()
    {
        using var t = new TestFiles();
        for (int i = 0; i < 3; i++) t.WriteFile("edm/" + DatasetPreparer.ArchiveName(i * 1000), TestFiles.Png(i, 3, 8));
        using var ds = DatasetSource.Load(t.PathOf("edm"));
        ds.HasLabels.Should().BeFalse();
        ds.Count.Should().Be(3);
    }

    [Fact]
    public void Rgba_png_is_refused_as_edm_does()
    {
        using var t = new TestFiles();
        var png = TestFiles.Png(0, 3, 4);
        png[25] = 6; // colour type RGBA in IHDR (CRC now wrong too, but the check comes first)
        var zip = t.WriteZip("d.zip", [("a.png", png)]);
        var act = () => DatasetSource.Load(zip);
        act.Should().Throw<DatasetException>().WithMessage("*alpha channel*");
    }
}
