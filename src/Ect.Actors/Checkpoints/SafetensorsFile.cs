using Ect.Actors.Run;
using Ect.Actors.Evaluation;
using Ect.Actors.Engine;
using Ect.Actors.Configuration;
using System.Buffers.Binary;
using System.Text.Json;

namespace Ect.Actors.Checkpoints;

/// <summary>
/// A minimal, TorchSharp-free safetensors reader for inspection: 8-byte little-endian header length N, N bytes of
/// JSON <c>{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}</c>, then the data
/// (offsets relative to the end of the header). Reads the header eagerly and tensor bytes on demand.
/// (Ect.Compute.IO.Safetensors reads into tensors; `ect inspect` only needs names and bytes, and must not load
/// libtorch to hash a file.)
/// </summary>
public sealed class SafetensorsFile
{
    private const long MaxHeaderBytes = 100L * 1024 * 1024;

    public sealed record Entry(string Name, string DType, IReadOnlyList<long> Shape, long Begin, long End)
    {
        public long Length => End - Begin;
    }

    public string Path { get; }
    public IReadOnlyDictionary<string, Entry> Tensors { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }
    private readonly long _dataStart;

    private SafetensorsFile(string path, Dictionary<string, Entry> tensors, Dictionary<string, string> metadata, long dataStart)
    {
        Path = path;
        Tensors = tensors;
        Metadata = metadata;
        _dataStart = dataStart;
    }

    public static SafetensorsFile Open(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"'{path}' does not exist.", path);
        using var fs = File.OpenRead(path);
        Span<byte> lenBytes = stackalloc byte[8];
        if (fs.Read(lenBytes) != 8) throw Bad(path, "shorter than the 8-byte header length");
        var n = BinaryPrimitives.ReadInt64LittleEndian(lenBytes);
        if (n <= 0 || n > MaxHeaderBytes || 8 + n > fs.Length)
            throw Bad(path, $"header length {n} is impossible for a {fs.Length}-byte file (not a safetensors file at all? " +
                "checkpoints of the fake engine, run.engine = fake, use their own format)");
        var header = new byte[n];
        fs.ReadExactly(header);
        var dataStart = 8 + n;
        var dataLength = fs.Length - dataStart;

        var tensors = new Dictionary<string, Entry>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        JsonDocument doc;
        try { doc = JsonDocument.Parse(header); }
        catch (JsonException e) { throw Bad(path, $"header is not JSON ({e.Message})"); }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw Bad(path, "header is not a JSON object");
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                if (p.Name != "__metadata__" && tensors.ContainsKey(p.Name))
                    throw Bad(path, $"tensor '{p.Name}' appears twice in the header");
                if (p.Name == "__metadata__")
                {
                    if (p.Value.ValueKind != JsonValueKind.Object) throw Bad(path, "__metadata__ is not an object of strings");
                    foreach (var m in p.Value.EnumerateObject())
                        metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String
                            ? m.Value.GetString()!
                            : throw Bad(path, $"__metadata__['{m.Name}'] is not a string");
                    continue;
                }
                try
                {
                    var dtype = p.Value.GetProperty("dtype").GetString() ?? throw Bad(path, $"'{p.Name}' has no dtype");
                    var shape = p.Value.GetProperty("shape").EnumerateArray().Select(x => x.GetInt64()).ToArray();
                    var offs = p.Value.GetProperty("data_offsets").EnumerateArray().Select(x => x.GetInt64()).ToArray();
                    if (offs.Length != 2 || offs[0] < 0 || offs[1] < offs[0] || offs[1] > dataLength)
                        throw Bad(path, $"'{p.Name}' has data_offsets [{string.Join(",", offs)}] outside the {dataLength} data bytes");
                    if (shape.Any(d => d < 0)) throw Bad(path, $"'{p.Name}' has shape [{string.Join(",", shape)}] with a negative size");
                    // checked: a shape whose element count wraps to 0 would otherwise match data_offsets [0, 0]
                    var expected = checked(shape.Aggregate(1L, (a, b) => a * b) * ElementSize(dtype));
                    if (expected >= 0 && offs[1] - offs[0] != expected)
                        throw Bad(path, $"'{p.Name}' ({dtype} [{string.Join(",", shape)}]) needs {expected} bytes, data_offsets give {offs[1] - offs[0]}");
                    tensors[p.Name] = new Entry(p.Name, dtype, shape, offs[0], offs[1]);
                }
                catch (Exception e) when (e is KeyNotFoundException or InvalidOperationException or FormatException or OverflowException)
                {
                    throw Bad(path, $"entry '{p.Name}' lacks a valid dtype/shape/data_offsets ({e.Message})");
                }
            }
        }
        return new SafetensorsFile(path, tensors, metadata, dataStart);
    }

    /// <summary>Streams a tensor's raw bytes (little-endian, as stored) to <paramref name="sink"/> in chunks.</summary>
    public void ReadBytes(Entry e, Action<ReadOnlySpan<byte>> sink)
    {
        using var fs = File.OpenRead(Path);
        fs.Position = _dataStart + e.Begin;
        var buffer = new byte[(int)Math.Min(1 << 20, Math.Max(1, e.Length))];
        var left = e.Length;
        while (left > 0)
        {
            var n = fs.Read(buffer, 0, (int)Math.Min(buffer.Length, left));
            if (n <= 0) throw Bad(Path, $"'{e.Name}' ends before its data_offsets say");
            sink(buffer.AsSpan(0, n));
            left -= n;
        }
    }

    /// <summary>Bytes per element; -1 for a dtype this reader does not know (its size is then not checked).</summary>
    public static int ElementSize(string dtype) => dtype switch
    {
        "F64" or "I64" or "U64" => 8,
        "F32" or "I32" or "U32" => 4,
        "F16" or "BF16" or "I16" or "U16" => 2,
        "U8" or "I8" or "BOOL" or "F8_E4M3" or "F8_E5M2" => 1,
        _ => -1,
    };

    private static InvalidDataException Bad(string path, string what) =>
        new($"'{path}' is not a valid safetensors file: {what}.");
}
