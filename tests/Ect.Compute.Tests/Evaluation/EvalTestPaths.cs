using System.Text.Json;
using Ect.Compute.Tests.TestSupport;

namespace Ect.Compute.Tests.Evaluation;

/// <summary>The golden data sets of tests/golden, through <see cref="RepoPaths"/> (one place that knows where they are).</summary>
internal static class EvalTestPaths
{
    public static string RepoRoot => RepoPaths.RepoRoot();

    public static string Golden(string name) => RepoPaths.GoldenDir(name);

    public static string FidInception => Golden("fid-inception");
}

/// <summary>Reads a golden folder's tensors.json index and raw little-endian .bin arrays (float32 or float64).</summary>
internal sealed class GoldenFolder
{
    readonly string _root;
    readonly JsonElement _index;

    public GoldenFolder(string root)
    {
        _root = root;
        _index = JsonDocument.Parse(File.ReadAllText(Path.Combine(root, "tensors.json"))).RootElement;
    }

    public long[] Shape(string name) => Entry(name).GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();

    JsonElement Entry(string name) =>
        _index.TryGetProperty(name, out var e) ? e : throw new KeyNotFoundException($"'{name}' is not in {_root}/tensors.json");

    public double[] ReadAsDouble(string name)
    {
        var e = Entry(name);
        var bytes = File.ReadAllBytes(Path.Combine(_root, e.GetProperty("file").GetString()!));
        var dtype = e.TryGetProperty("dtype", out var d) ? d.GetString() : "float32";
        return dtype == "float64"
            ? Enumerable.Range(0, bytes.Length / 8).Select(i => BitConverter.ToDouble(bytes, i * 8)).ToArray()
            : Enumerable.Range(0, bytes.Length / 4).Select(i => (double)BitConverter.ToSingle(bytes, i * 4)).ToArray();
    }

    public float[] ReadFloat(string name)
    {
        var e = Entry(name);
        if (e.TryGetProperty("dtype", out var d) && d.GetString() != "float32")
            throw new InvalidOperationException($"'{name}' is {d.GetString()}, not float32");
        var bytes = File.ReadAllBytes(Path.Combine(_root, e.GetProperty("file").GetString()!));
        var values = new float[bytes.Length / 4];
        Buffer.BlockCopy(bytes, 0, values, 0, bytes.Length);
        return values;
    }

    public TorchSharp.torch.Tensor Tensor(string name) => TorchSharp.torch.tensor(ReadFloat(name), Shape(name));

    public JsonElement Meta => JsonDocument.Parse(File.ReadAllText(Path.Combine(_root, "meta.json"))).RootElement;
}
