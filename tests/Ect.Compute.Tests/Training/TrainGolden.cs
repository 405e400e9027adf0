using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Compute.Tests.Training;

/// <summary>
/// Minimal reader of the golden folder's JSON index + raw float32 .bin files, for the train-area tests.
/// (The team's RawTensorFolder lives on the net branch; this keeps these tests independent of it.)
/// </summary>
public static class TrainGolden
{
    public static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Ect.Actors.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new DirectoryNotFoundException(
            $"no folder containing Ect.Actors.sln above '{AppContext.BaseDirectory}': run the tests from inside the repository.");
    }

    public static string Dir()
    {
        var d = Path.GetFullPath(Path.Combine(RepoRoot(), "..", "shared", "golden", "ddpmpp-small"));
        if (!Directory.Exists(d))
            throw new DirectoryNotFoundException($"golden data folder '{d}' is missing: it must sit at ../shared/golden/ddpmpp-small relative to the repository root.");
        return d;
    }

    /// <summary>Reads entry <paramref name="name"/> of index <paramref name="index"/> (tensors.json, weights.json, grads.json) as float32.</summary>
    public static Tensor Load(string name, string index = "tensors.json")
    {
        var dir = Dir();
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, index)));
        if (!doc.RootElement.TryGetProperty(name, out var e)) throw new KeyNotFoundException($"golden index '{index}' has no entry '{name}'.");
        return FromEntry(dir, e);
    }

    /// <summary>All entries of an index, by name.</summary>
    public static Dictionary<string, Tensor> LoadAll(string index)
    {
        var dir = Dir();
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, index)));
        return doc.RootElement.EnumerateObject().ToDictionary(p => p.Name, p => FromEntry(dir, p.Value));
    }

    private static Tensor FromEntry(string dir, JsonElement e)
    {
        var shape = e.GetProperty("shape").EnumerateArray().Select(x => x.GetInt64()).ToArray();
        var file = Path.Combine(dir, e.GetProperty("file").GetString()!);
        var dtype = e.TryGetProperty("dtype", out var dt) ? dt.GetString() : "float32";
        if (dtype != "float32") throw new NotSupportedException($"golden entry {file}: dtype {dtype}");
        var bytes = File.ReadAllBytes(file);
        var f = new float[bytes.Length / 4];
        Buffer.BlockCopy(bytes, 0, f, 0, bytes.Length);
        if (f.LongLength != shape.Aggregate(1L, (a, b) => a * b)) throw new InvalidDataException($"golden file {file}: {f.Length} floats, shape [{string.Join(",", shape)}]");
        return tensor(f, shape);
    }

    public static JsonDocument Meta() => JsonDocument.Parse(File.ReadAllText(Path.Combine(Dir(), "meta.json")));
}
