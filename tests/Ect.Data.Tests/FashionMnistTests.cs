using Ect.Data.Sources;
using FluentAssertions;
using Xunit;

namespace Ect.Data.Tests;

/// <summary>Runs on the real Debian Fashion-MNIST files when installed; reported as skipped otherwise.</summary>
public class FashionMnistTests
{
    [FashionMnistFact]
    public void Real_training_set_loads_with_ten_balanced_classes()
    {
        using var ds = DatasetSource.Load(FashionMnistFactAttribute.Folder);
        (ds.Count, ds.Channels, ds.Height, ds.Width, ds.ClassCount).Should().Be((60000, 1, 28, 28, 10));
        var counts = new int[10];
        foreach (var l in ds.Labels) counts[l]++;
        counts.Should().OnlyContain(c => c == 6000, "Fashion-MNIST has 6,000 training images per class");
    }

    [FashionMnistFact]
    public void Real_test_set_loads_and_prepares_a_small_zip()
    {
        using var t = new TestFiles();
        using (var test = DatasetSource.Load(Path.Combine(FashionMnistFactAttribute.Folder, "t10k-images-idx3-ubyte.gz")))
            test.Count.Should().Be(10000);
        var r = DatasetPreparer.Prepare(FashionMnistFactAttribute.Folder, t.PathOf("f.zip"), null, 100, null);
        r.Resolution.Should().Be(32);
        using var ds = DatasetSource.Load(t.PathOf("f.zip"));
        ds.Count.Should().Be(100);
    }

    [FashionMnistFact]
    public void Grid_of_real_images_matches_the_dataset_pixels()
    {
        using var t = new TestFiles();
        using var ds = DatasetSource.Load(FashionMnistFactAttribute.Folder, maxImages: 64);
        var asm = new BatchAssembler(ds, 64, 0, new BatchOptions { Resolution = 32, Shuffle = false });
        var buf = new float[asm.ImageFloats];
        asm.NextInto(buf, new float[64 * 10]);
        // ECT_KEEP_GRID=path keeps the picture for a look; otherwise it goes with the temp folder.
        var path = Environment.GetEnvironmentVariable("ECT_KEEP_GRID") is { Length: > 0 } keep ? keep : t.PathOf("grid.png");
        ImageGrid.SavePng(buf, 64, 1, 32, 32, path);
        using var bmp = SkiaSharp.SKBitmap.Decode(path);
        (bmp.Width, bmp.Height).Should().Be((256, 256));
        // Image 9 sits in row 1, column 1; its pixel (y=10, x=14) is dataset pixel (8, 12) after the 2-pixel pad.
        bmp.GetPixel(32 + 2 + 12, 32 + 2 + 8).Red.Should().Be(ds.GetImage(9)[8 * 28 + 12]);
    }
}
