using Ect.Data.Sources;
using FluentAssertions;
using Xunit;

namespace Ect.Data.Tests;

public class IdxSourceTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Reads_images_and_paired_labels_gzipped_or_not(bool gz)
    {
        using var t = new TestFiles();
        var path = t.WriteIdx("train", 12, 28, 28, gz);
        using var ds = DatasetSource.Load(path);
        ds.Count.Should().Be(12);
        (ds.Channels, ds.Height, ds.Width).Should().Be((1, 28, 28));
        ds.ClassCount.Should().Be(10);
        ds.GetLabel(11).Should().Be(1);
        ds.GetImage(5)[100].Should().Be(TestFiles.Pixel(5, 100));
    }

    [Fact]
    public void A_folder_opens_its_train_split_and_test_split_on_request()
    {
        using var t = new TestFiles();
        t.WriteIdx("train", 6, 4, 4, gz: true);
        t.WriteIdx("t10k", 3, 4, 4, gz: true);
        using (var train = DatasetSource.Open(t.Dir)) train.Count.Should().Be(6);
        using (var test = DatasetSource.Open(t.Dir, DatasetSplit.Test)) test.Count.Should().Be(3);
    }

    [Fact]
    public void Missing_labels_file_gives_an_unlabelled_set()
    {
        using var t = new TestFiles();
        var path = t.WriteIdx("train", 4, 4, 4, gz: false);
        File.Delete(t.PathOf("train-labels-idx1-ubyte"));
        using var ds = DatasetSource.Load(path);
        ds.HasLabels.Should().BeFalse();
        ds.GetLabel(0).Should().Be(-1);
    }

    [Fact]
    public void Missing_path_names_the_path()
    {
        var act = () => DatasetSource.Open("/nonexistent/train-images-idx3-ubyte.gz");
        act.Should().Throw<DatasetException>().Where(e => e.FilePath == "/nonexistent/train-images-idx3-ubyte.gz")
            .WithMessage("*does not exist*Check the path*");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Truncated_file_says_how_many_images_it_holds(bool gz)
    {
        using var t = new TestFiles();
        var full = TestFiles.IdxBytes(2051, [10, 4, 4], new byte[160]);
        var cut = full[..(full.Length - 50)];
        var path = t.WriteFile("train-images-idx3-ubyte" + (gz ? ".gz" : ""), gz ? TestFiles.Gzip(cut) : cut);
        var act = () => new IdxSource(path);
        act.Should().Throw<DatasetException>().Where(e => e.FilePath == path)
            .WithMessage("*truncated*10 images*only 110*6 whole images*re-download*");
    }

    [Fact]
    public void Gzip_cut_short_is_refused()
    {
        using var t = new TestFiles();
        var gz = TestFiles.Gzip(TestFiles.IdxBytes(2051, [10, 16, 16], Enumerable.Range(0, 2560).Select(i => (byte)(i * 7)).ToArray()));
        var path = t.WriteFile("train-images-idx3-ubyte.gz", gz[..(gz.Length / 2)]);
        var act = () => new IdxSource(path);
        act.Should().Throw<DatasetException>().Where(e => e.FilePath == path).WithMessage("*Re-download*");
    }

    [Fact]
    public void Wrong_magic_is_refused_with_the_expected_value()
    {
        using var t = new TestFiles();
        var path = t.WriteFile("train-images-idx3-ubyte", TestFiles.IdxBytes(0x0D03, [1, 2, 2], new byte[4]));
        var act = () => new IdxSource(path);
        act.Should().Throw<DatasetException>().WithMessage("*wrong IDX magic number 3331*starts with 2051*");
    }

    [Fact]
    public void Labels_file_passed_as_images_is_refused_for_its_dimension_count()
    {
        using var t = new TestFiles();
        t.WriteIdx("train", 4, 4, 4, gz: false);
        var path = t.PathOf("train-labels-idx1-ubyte");
        var act = () => new IdxSource(path);
        act.Should().Throw<DatasetException>().Where(e => e.FilePath == path)
            .WithMessage("*1 dimension(s)*need 3*Pass the images file*");
    }

    [Fact]
    public void Image_and_label_counts_that_differ_are_refused()
    {
        using var t = new TestFiles();
        var path = t.WriteIdx("train", 5, 4, 4, gz: true, labelCount: 4);
        var act = () => new IdxSource(path);
        act.Should().Throw<DatasetException>().Where(e => e.FilePath.EndsWith("train-labels-idx1-ubyte.gz"))
            .WithMessage("*4 labels but train-images-idx3-ubyte.gz holds 5 images*");
    }

    [Fact]
    public void Zero_images_is_an_empty_dataset_error()
    {
        using var t = new TestFiles();
        var path = t.WriteFile("train-images-idx3-ubyte", TestFiles.IdxBytes(2051, [0, 28, 28], []));
        var act = () => new IdxSource(path);
        act.Should().Throw<DatasetException>().WithMessage("*0 images*empty*");
    }
}
