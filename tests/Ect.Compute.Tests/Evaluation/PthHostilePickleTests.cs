using System.IO.Compression;
using Ect.Compute.Evaluation;
using Ect.Compute.Tests.TestSupport;
using FluentAssertions;
using TorchSharp;
using TorchSharp.PyBridge;
using Xunit;
using Xunit.Abstractions;

namespace Ect.Compute.Tests.Evaluation;

/// <summary>
/// `ect eval --metric fid --inception-weights FILE` reads a PyTorch zip checkpoint through TorchSharp.PyBridge's
/// unpickler: the pickle (archive/data.pkl) names each tensor's storage, size, stride and offset. A file from
/// elsewhere is hostile input: seeded byte substitutions in the pickle must each end in either a state dict that
/// loads or an InvalidDataException naming the file -- never another exception type, a hang or a crash.
/// </summary>
public class PthHostilePickleTests(ITestOutputHelper output)
{
    private static byte[] ValidPth(string dir)
    {
        using var src = new BasicConv2d("b", 3, 8, 3);
        var path = Path.Combine(dir, "valid.pth");
        src.save_py(path);
        return File.ReadAllBytes(path);
    }

    /// <summary>The zip with its pickle entry's bytes replaced by <paramref name="pickle"/>.</summary>
    private static byte[] WithPickle(byte[] zip, Func<byte[], byte[]> change)
    {
        using var src = new ZipArchive(new MemoryStream(zip), ZipArchiveMode.Read);
        var outStream = new MemoryStream();
        using (var dst = new ZipArchive(outStream, ZipArchiveMode.Create, leaveOpen: true))
            foreach (var e in src.Entries)
            {
                using var r = e.Open();
                var ms = new MemoryStream();
                r.CopyTo(ms);
                var bytes = e.FullName.EndsWith("data.pkl", StringComparison.Ordinal) ? change(ms.ToArray()) : ms.ToArray();
                using var w = dst.CreateEntry(e.FullName, CompressionLevel.NoCompression).Open();
                w.Write(bytes);
            }
        return outStream.ToArray();
    }

    [Fact]
    public void Seeded_byte_substitutions_in_the_pickle_load_or_are_refused_as_a_bad_file()
    {
        var dir = Directory.CreateTempSubdirectory("ect-pth-").FullName;
        try
        {
            var valid = ValidPth(dir);
            var rng = new Random(20261203);
            int loaded = 0, refused = 0;
            var others = new List<string>();
            for (int i = 0; i < 1000; i++)
            {
                var file = Path.Combine(dir, $"m{i}.pth");
                File.WriteAllBytes(file, WithPickle(valid, p =>
                {
                    var q = (byte[])p.Clone();
                    int edits = 1 + rng.Next(3);
                    for (int k = 0; k < edits; k++) q[rng.Next(q.Length)] = (byte)rng.Next(256);
                    return q;
                }));
                try
                {
                    using var dst = new BasicConv2d("b", 3, 8, 3);
                    StrictStateDictLoader.Load(dst, file, "test conv");
                    loaded++;
                }
                catch (InvalidDataException e) { refused++; e.Message.Should().Contain(file); }
                catch (Exception e) { others.Add($"{i}: {e.GetType().Name}: {e.Message}"); }
                File.Delete(file);
            }
            output.WriteLine($"loaded {loaded}, refused {refused}, other {others.Count}");
            foreach (var o in others.Take(20)) output.WriteLine(o);
            others.Should().BeEmpty("before the fix 48 of 600 escaped as IOException (\"premature end of input stream\") or EndOfStreamException, which `ect eval` did not catch");
            refused.Should().BeGreaterThan(500, "most substitutions break the pickle, so the loop did exercise the refusals");
            loaded.Should().BeGreaterThan(0, "some substitutions (inside a name or a value) leave a loadable file");
        }
        finally { Directory.Delete(dir, true); }
    }
    /// <summary>Hand-made hostile files (hostile-pth/make.py writes them): each names storage, size, stride or offset wrong.</summary>
    [Theory]
    [InlineData("size-overrun", "out of bounds for storage")]        // strides 10x too large for the storage
    [InlineData("offset-overrun", "Could not read")]                  // storage offset 2^40
    [InlineData("huge-size", "can't allocate memory")]               // a [2^20, 2^20, 3, 3] tensor (39 TB)
    [InlineData("neg-stride", "Negative strides")]
    public void A_pickle_whose_tensor_overruns_its_storage_is_refused_naming_the_file(string name, string why)
    {
        var path = Path.Combine(RepoPaths.RepoRoot(), "tests", "Ect.Compute.Tests", "Evaluation", "hostile-pth", name + ".pth");
        using var dst = torch.nn.Conv2d(3, 8, 3, bias: false);
        var act = () => StrictStateDictLoader.Load(dst, path, "test conv");
        act.Should().Throw<InvalidDataException>().Which.Message.Should().Contain(path).And.Contain(why);
    }

    [Fact]
    public void The_storage_size_a_pickle_claims_is_not_what_is_allocated()
    {
        // huge-numel.pth claims a 2^40-element storage; the loader takes the storage from the zip entry (216 floats).
        var dir = Path.Combine(RepoPaths.RepoRoot(), "tests", "Ect.Compute.Tests", "Evaluation", "hostile-pth");
        foreach (var name in new[] { "ok", "huge-numel" })
        {
            using var dst = torch.nn.Conv2d(3, 8, 3, bias: false);
            StrictStateDictLoader.Load(dst, Path.Combine(dir, name + ".pth"), "test conv");
            dst.weight!.data<float>().ToArray().Should().OnlyContain(v => v == 0.5f, name);
        }
    }
}
