using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace Ect.Compute.IO;

/// <summary>
/// The golden-data format: a JSON index <c>{name: {shape, file, dtype, ...}}</c> whose <c>file</c> paths are
/// relative to the index's folder, each file holding raw little-endian C-order values
/// (float32, float64 or int64; no header). Extra fields (<c>kind</c>, <c>desc</c>) are kept in
/// <see cref="Entry.Extra"/> and ignored otherwise.
/// </summary>
public sealed class RawTensorFolder
{
    public sealed record Entry(string Name, long[] Shape, string File, string DType, IReadOnlyDictionary<string, string> Extra);

    private readonly Dictionary<string, Entry> _entries;

    public string IndexPath { get; }
    public string BaseDirectory { get; }
    public IReadOnlyList<string> Names { get; }
    public IReadOnlyDictionary<string, Entry> Entries => _entries;

    /// <summary>Opens a JSON index (e.g. <c>golden/ddpmpp-small/weights.json</c>).</summary>
    public RawTensorFolder(string indexPath)
    {
        IndexPath = Path.GetFullPath(indexPath);
        if (!System.IO.File.Exists(IndexPath))
            throw new FileNotFoundException($"Tensor index '{IndexPath}' does not exist.", IndexPath);
        BaseDirectory = Path.GetDirectoryName(IndexPath)!;
        JsonObject root;
        try
        {
            root = JsonNode.Parse(System.IO.File.ReadAllText(IndexPath))?.AsObject()
                   ?? throw new InvalidDataException("the index is empty");
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or InvalidDataException)
        {
            throw new InvalidDataException($"Tensor index '{IndexPath}' is not a JSON object {{name: {{shape, file, dtype}}}}: {e.Message}", e);
        }
        _entries = new Dictionary<string, Entry>();
        var names = new List<string>();
        foreach (var (name, node) in root)
        {
            try
            {
                var o = node!.AsObject();
                var shape = o["shape"]!.AsArray().Select(v => v!.GetValue<long>()).ToArray();
                var file = o["file"]!.GetValue<string>();
                var dtype = o["dtype"]!.GetValue<string>();
                var extra = o.Where(kv => kv.Key is not ("shape" or "file" or "dtype"))
                    .ToDictionary(kv => kv.Key, kv => kv.Value?.ToString() ?? "");
                ElementSize(dtype, name);
                _entries[name] = new Entry(name, shape, file, dtype, extra);
                names.Add(name);
            }
            catch (Exception e) when (e is not InvalidDataException)
            {
                throw new InvalidDataException($"Tensor index '{IndexPath}': entry '{name}' needs shape (int array), file (string) and dtype (string): {e.Message}", e);
            }
        }
        Names = names;
    }

    public bool Contains(string name) => _entries.ContainsKey(name);

    /// <summary>Reads one tensor (CPU, the stored dtype).</summary>
    public Tensor Read(string name)
    {
        if (!_entries.TryGetValue(name, out var e))
            throw new KeyNotFoundException($"Tensor '{name}' is not listed in '{IndexPath}' ({_entries.Count} entries).");
        var path = Path.Combine(BaseDirectory, e.File);
        if (!System.IO.File.Exists(path))
            throw new FileNotFoundException($"Tensor '{name}': data file '{path}' (listed in '{IndexPath}') does not exist.", path);
        long count = e.Shape.Aggregate(1L, (a, b) => a * b);
        int size = ElementSize(e.DType, name);
        var bytes = System.IO.File.ReadAllBytes(path);
        if (bytes.LongLength != count * size)
            throw new InvalidDataException(
                $"Tensor '{name}': '{path}' has {bytes.LongLength} bytes, but shape [{string.Join(",", e.Shape)}] of {e.DType} needs {count * size}.");
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("RawTensorFolder reads little-endian data on little-endian machines only.");
        return e.DType switch
        {
            "float32" => tensor(MemoryMarshal.Cast<byte, float>(bytes).ToArray(), e.Shape),
            "float64" => tensor(MemoryMarshal.Cast<byte, double>(bytes).ToArray(), e.Shape),
            "int64" => tensor(MemoryMarshal.Cast<byte, long>(bytes).ToArray(), e.Shape),
            _ => throw new InvalidDataException($"unreachable dtype {e.DType}"),
        };
    }

    /// <summary>Reads every tensor, keyed by name, in index order.</summary>
    public Dictionary<string, Tensor> ReadAll()
    {
        var result = new Dictionary<string, Tensor>();
        foreach (var n in Names) result[n] = Read(n);
        return result;
    }

    /// <summary>Reads every tensor whose name starts with <paramref name="prefix"/>.</summary>
    public Dictionary<string, Tensor> ReadPrefix(string prefix) =>
        Names.Where(n => n.StartsWith(prefix, StringComparison.Ordinal)).ToDictionary(n => n, Read);

    /// <summary>
    /// Writes tensors in this format: the index at <paramref name="indexPath"/> and one <c>.bin</c> per tensor
    /// under <paramref name="dataFolder"/> (relative to the index's folder), named after the tensor
    /// ('/' in a name makes sub-folders). Supports float32, float64, int64.
    /// </summary>
    public static void Write(string indexPath, IReadOnlyDictionary<string, Tensor> tensors, string dataFolder = "data")
    {
        var baseDir = Path.GetDirectoryName(Path.GetFullPath(indexPath))!;
        Directory.CreateDirectory(baseDir);
        var index = new JsonObject();
        foreach (var (name, t) in tensors)
        {
            if (name.Contains("..") || Path.IsPathRooted(name))
                throw new ArgumentException($"Tensor name '{name}' cannot be used as a file name (no '..' or absolute paths).");
            string dtype = t.dtype switch
            {
                ScalarType.Float32 => "float32",
                ScalarType.Float64 => "float64",
                ScalarType.Int64 => "int64",
                _ => throw new ArgumentException($"Tensor '{name}' has dtype {t.dtype}; RawTensorFolder writes float32, float64 or int64."),
            };
            var rel = Path.Combine(dataFolder, name + ".bin").Replace('\\', '/');
            var path = Path.Combine(baseDir, rel);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            using var c = t.detach().cpu().contiguous();
            byte[] bytes = dtype switch
            {
                "float32" => MemoryMarshal.AsBytes(c.data<float>().ToArray().AsSpan()).ToArray(),
                "float64" => MemoryMarshal.AsBytes(c.data<double>().ToArray().AsSpan()).ToArray(),
                _ => MemoryMarshal.AsBytes(c.data<long>().ToArray().AsSpan()).ToArray(),
            };
            System.IO.File.WriteAllBytes(path, bytes);
            index[name] = new JsonObject
            {
                ["shape"] = new JsonArray(t.shape.Select(s => (JsonNode)JsonValue.Create(s)).ToArray()),
                ["file"] = rel,
                ["dtype"] = dtype,
            };
        }
        System.IO.File.WriteAllText(indexPath, index.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    private static int ElementSize(string dtype, string name) => dtype switch
    {
        "float32" => 4,
        "float64" => 8,
        "int64" => 8,
        _ => throw new InvalidDataException($"Tensor '{name}': dtype '{dtype}' is not supported (float32, float64, int64)."),
    };
}
