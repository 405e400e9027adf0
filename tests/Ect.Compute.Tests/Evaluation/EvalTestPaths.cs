using System.Text.Json;

namespace Ect.Compute.Tests.Evaluation;

/// <summary>Locates the repository root (folder with Ect.Actors.sln) and the golden data at ../shared/golden.</summary>
internal static class EvalTestPaths
{
    public static string RepoRoot
    {
        get
        {
            var dir = new DirectoryInfo(AppContext.BaseDirectory);
            while (dir != null && !File.Exists(Path.Combine(dir.FullName, "Ect.Actors.sln"))) dir = dir.Parent;
            return dir?.FullName ?? throw new InvalidOperationException(
                $"Could not find Ect.Actors.sln above '{AppContext.BaseDirectory}': run the tests from inside the repository.");
        }
    }

    public static string Golden(string name)
    {
        var path = Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared", "golden", name));
        if (!Directory.Exists(path))
            throw new DirectoryNotFoundException(
                $"Golden data folder '{path}' is missing: the tests expect ../shared/golden/{name} next to the repository root " +
                "(the shared golden data set; see docs/architecture.md).");
        return path;
    }

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
