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
}
