using System.Buffers.Binary;
using System.IO.Compression;
using FluentAssertions;
using Xunit;

namespace Ect.Actors.Tests.Cli;

[Collection("Console")]
public sealed class DataVerbTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ect-data-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private static (int Code, string Out, string Err) RunEct(params string[] args) => CliHarness.Run(args);

    private string WriteIdx(int images)
    {
        var path = Path.Combine(_dir, "train-images-idx3-ubyte");
        var b = new byte[16 + images * 28 * 28];
        BinaryPrimitives.WriteInt32BigEndian(b, 2051);
        BinaryPrimitives.WriteInt32BigEndian(b.AsSpan(4), images);
        BinaryPrimitives.WriteInt32BigEndian(b.AsSpan(8), 28);
        BinaryPrimitives.WriteInt32BigEndian(b.AsSpan(12), 28);
        for (var i = 16; i < b.Length; i++) b[i] = (byte)(i * 7 % 251);
        File.WriteAllBytes(path, b);
        return path;
    }

    [Fact]
    public void Prepare_writes_an_edm_zip_with_at_most_max_images()
    {
        var src = WriteIdx(5);
        var dest = Path.Combine(_dir, "out.zip");
        var (code, output, err) = RunEct("data", "prepare", "--source", src, "--dest", dest, "--max-images", "3");

        code.Should().Be(0, err);
        output.Should().Contain("wrote 3 images").And.Contain("1x32x32");
        using var zip = ZipFile.OpenRead(dest);
        zip.Entries.Select(e => e.FullName).Should().Contain("dataset.json")
            .And.Contain("00000/img00000000.png").And.Contain("00000/img00000002.png")
            .And.NotContain("00000/img00000003.png");
    }

    [Fact]
    public void A_bad_source_exits_1_with_the_dataset_error_on_stderr()
    {
        var bad = Path.Combine(_dir, "notes.txt");
        File.WriteAllText(bad, "not a dataset");
        var (code, _, err) = RunEct("data", "prepare", "--source", bad, "--dest", Path.Combine(_dir, "o.zip"));
        code.Should().Be(1);
        err.Should().StartWith("ect data prepare:").And.Contain("notes.txt");
        File.Exists(Path.Combine(_dir, "o.zip")).Should().BeFalse();
    }
}
