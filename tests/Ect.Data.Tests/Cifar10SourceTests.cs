using Ect.Data.Sources;
using FluentAssertions;
using Xunit;

namespace Ect.Data.Tests;

public class Cifar10SourceTests
{
    [Fact]
    public void Reads_the_folder_in_batch_order_with_planar_rgb()
    {
        using var t = new TestFiles();
        var folder = t.WriteCifarFolder(perFile: 3);
        using var ds = DatasetSource.Load(folder);
        ds.Count.Should().Be(15);
        (ds.Channels, ds.Height, ds.Width).Should().Be((3, 32, 32));
        ds.GetLabel(7).Should().Be(7);
        ds.GetImage(7)[1024].Should().Be(TestFiles.Pixel(7, 1024), "record bytes are R plane, G plane, B plane = CHW");
        ds.ClassNames.Should().HaveCount(10).And.Contain("truck");
    }

    [Fact]
    public void Reads_the_tar_gz_and_the_test_split()
    {
        using var t = new TestFiles();
        var tgz = t.WriteCifarTarGz(perFile: 2);
        using (var train = DatasetSource.Load(tgz)) { train.Count.Should().Be(10); train.GetImage(9)[5].Should().Be(TestFiles.Pixel(9, 5)); }
        using (var test = DatasetSource.Load(tgz, split: DatasetSplit.Test)) { test.Count.Should().Be(2); test.GetLabel(0).Should().Be(0); }
    }

    [Fact]
    public void Truncated_batch_file_is_named()
    {
        using var t = new TestFiles();
        var folder = t.WriteCifarFolder(perFile: 2);
        var bad = Path.Combine(folder, "cifar-10-batches-bin", "data_batch_3.bin");
        File.WriteAllBytes(bad, File.ReadAllBytes(bad)[..5000]);
        var act = () => DatasetSource.Open(folder);
        act.Should().Throw<DatasetException>().Where(e => e.FilePath == bad).WithMessage("*5000 bytes*not a whole number*Re-download*");
    }

    [Fact]
    public void Missing_batch_file_is_named()
    {
        using var t = new TestFiles();
        var folder = t.WriteCifarFolder(perFile: 2);
        File.Delete(Path.Combine(folder, "cifar-10-batches-bin", "data_batch_5.bin"));
        var act = () => DatasetSource.Open(folder);
        act.Should().Throw<DatasetException>().Where(e => e.FilePath.EndsWith("data_batch_5.bin")).WithMessage("*missing*");
    }

    [Fact]
    public void Truncated_tar_gz_is_refused()
    {
        using var t = new TestFiles();
        var tgz = t.WriteCifarTarGz(perFile: 50);
        var bytes = File.ReadAllBytes(tgz);
        File.WriteAllBytes(tgz, bytes[..(bytes.Length / 3)]);
        var act = () => DatasetSource.Open(tgz);
        act.Should().Throw<DatasetException>().Where(e => e.FilePath == tgz);
    }
}
