using Ect.Compute.IO;
using Ect.Compute.Tests.TestSupport;
using FluentAssertions;
using Xunit;
using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Compute.Tests.IO;

public class RawTensorFolderTests : IDisposable
{
    // Owned Scalars (docs/torchsharp-scalar-race.md): alive for the whole process.
    private static readonly Scalar Seven = 7.ToScalar(), Quarter = 0.25f.ToScalar();
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "ect-rtf-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, true);
    }

    [Fact]
    public void WriteThenReadRoundTripsEveryDtypeBitExactly()
    {
        var tensors = new Dictionary<string, Tensor>
        {
            ["a/f32"] = randn(2, 3, 4),
            ["f64"] = randn(5, dtype: float64),
            ["i64"] = arange(ScalarConstants.Zero, Seven, ScalarConstants.One, dtype: int64).reshape(7, 1).Times(1_000_000_000_000L),
            ["scalar"] = tensor(3.5f),
        };
        var index = Path.Combine(_dir, "t.json");
        RawTensorFolder.Write(index, tensors);
        var folder = new RawTensorFolder(index);
        folder.Names.Should().Equal("a/f32", "f64", "i64", "scalar");
        foreach (var (name, t) in tensors)
        {
            var back = folder.Read(name);
            back.dtype.Should().Be(t.dtype, name);
            back.shape.Should().Equal(t.shape, name);
            back.eq(t).all().item<bool>().Should().BeTrue(name);
        }
        new FileInfo(Path.Combine(_dir, "data", "a", "f32.bin")).Length.Should().Be(2 * 3 * 4 * 4);
    }

    [Fact]
    public void ReadsTheGoldenWeightsIndex()
    {
        var folder = new RawTensorFolder(Path.Combine(RepoPaths.GoldenDir("ddpmpp-small"), "weights.json"));
        folder.Names.Should().HaveCount(280);
        var f = folder.Read("model.enc.16x16_down.conv0.resample_filter");
        f.shape.Should().Equal(1, 1, 2, 2);
        f.eq(Quarter).all().item<bool>().Should().BeTrue("the [1,1] filter is 0.25 everywhere");
        folder.Entries["model.enc.16x16_down.conv0.resample_filter"].Extra["kind"].Should().Be("buffer");
    }

    [Fact]
    public void MissingFilesAndSizeMismatchFailClearly()
    {
        var index = Path.Combine(_dir, "t.json");
        RawTensorFolder.Write(index, new Dictionary<string, Tensor> { ["x"] = randn(4), ["y"] = randn(2) });
        File.WriteAllBytes(Path.Combine(_dir, "data", "x.bin"), new byte[12]);
        File.Delete(Path.Combine(_dir, "data", "y.bin"));
        var folder = new RawTensorFolder(index);

        var size = () => folder.Read("x");
        size.Should().Throw<InvalidDataException>().WithMessage("*'x'*has 12 bytes*shape [4] of float32 needs 16*");
        var gone = () => folder.Read("y");
        gone.Should().Throw<FileNotFoundException>().WithMessage("*'y'*y.bin*does not exist*");
        var unknown = () => folder.Read("z");
        unknown.Should().Throw<KeyNotFoundException>().WithMessage("*'z' is not listed*");
        var noIndex = () => new RawTensorFolder(Path.Combine(_dir, "nope.json"));
        noIndex.Should().Throw<FileNotFoundException>().WithMessage("*nope.json*does not exist*");

        File.WriteAllText(index, """{"x": {"shape": [2], "file": "x.bin", "dtype": "float16"}}""");
        var dtype = () => new RawTensorFolder(index);
        dtype.Should().Throw<InvalidDataException>().WithMessage("*dtype 'float16' is not supported*");
    }
}
