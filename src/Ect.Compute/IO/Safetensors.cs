using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Compute.IO;

/// <summary>
/// Reader/writer for the safetensors format (https://github.com/huggingface/safetensors):
/// 8-byte little-endian header length N, N bytes of JSON header
/// <c>{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}</c>, then the raw
/// little-endian tensor bytes (offsets relative to the end of the header). The header is padded with spaces so
/// that the data starts 8-byte aligned, as the reference writer does.
/// Supported dtypes: F32, F64, I64, I32, U8 (read and write); BF16 and F16 are read and widened to float32.
/// </summary>
public static class Safetensors
{
    /// <summary>Header sizes above this are treated as a corrupt file rather than allocated (the reference caps at 100 MB).</summary>
    private const long MaxHeaderBytes = 100L * 1024 * 1024;

    /// <summary>What a safetensors file holds: tensors (CPU, contiguous, owned by the caller) and the metadata map.</summary>
    public sealed record Contents(IReadOnlyDictionary<string, Tensor> Tensors, IReadOnlyDictionary<string, string> Metadata);

    public static void Write(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        using var fs = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None);
        Write(fs, tensors, metadata);
        fs.Flush(flushToDisk: true);
    }

    public static void Write(Stream stream, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        // Order as the reference writer: larger element size first, then by name; this keeps every tensor
        // naturally aligned to its element size without padding between tensors.
        var entries = tensors
            .Select(kv => (Name: kv.Key, Tensor: kv.Value, Code: DTypeCode(kv.Key, kv.Value.dtype)))
            .OrderByDescending(e => ElementSize(e.Code)).ThenBy(e => e.Name, StringComparer.Ordinal)
            .ToList();

        var header = new JsonObject();
        if (metadata is { Count: > 0 })
        {
            var meta = new JsonObject();
            foreach (var kv in metadata.OrderBy(k => k.Key, StringComparer.Ordinal)) meta[kv.Key] = kv.Value;
            header["__metadata__"] = meta;
        }
        long offset = 0;
        var blobs = new List<byte[]>(entries.Count);
        foreach (var e in entries)
        {
            if (e.Name == "__metadata__") throw new ArgumentException("A tensor may not be named '__metadata__' (reserved by the safetensors format).");
            var bytes = TensorBytes(e.Tensor);
            blobs.Add(bytes);
            header[e.Name] = new JsonObject
            {
                ["dtype"] = e.Code,
                ["shape"] = new JsonArray(e.Tensor.shape.Select(s => (JsonNode)JsonValue.Create(s)!).ToArray()),
                ["data_offsets"] = new JsonArray(JsonValue.Create(offset), JsonValue.Create(offset + bytes.Length)),
            };
            offset += bytes.Length;
        }

        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (json.Length + 7) / 8 * 8;
        var lenBytes = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(lenBytes, (ulong)padded);
        stream.Write(lenBytes);
        stream.Write(json);
        for (int i = json.Length; i < padded; i++) stream.WriteByte((byte)' ');
        foreach (var b in blobs) stream.Write(b);
    }

    public static Contents Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"safetensors file '{path}' does not exist.", path);
        var data = File.ReadAllBytes(path);
        return Read(data, path);
    }

    /// <summary>Parses a whole safetensors file held in memory. <paramref name="sourceName"/> names it in errors.</summary>
    public static Contents Read(byte[] data, string sourceName = "<memory>")
    {
        if (data.Length < 8)
            throw new InvalidDataException($"'{sourceName}' is not a safetensors file: {data.Length} bytes, shorter than the 8-byte header length (file truncated?).");
        ulong headerLen = BinaryPrimitives.ReadUInt64LittleEndian(data.AsSpan(0, 8));
        if (headerLen > MaxHeaderBytes)
            throw new InvalidDataException($"'{sourceName}': header length {headerLen} bytes is implausible (limit {MaxHeaderBytes}); not a safetensors file or corrupt.");
        if (8 + (long)headerLen > data.Length)
            throw new InvalidDataException($"'{sourceName}': header says {headerLen} bytes but the file has only {data.Length - 8} after the length field (file truncated).");
        JsonObject header;
        try
        {
            header = JsonNode.Parse(Encoding.UTF8.GetString(data, 8, (int)headerLen)) as JsonObject
                     ?? throw new InvalidDataException($"'{sourceName}': header is not a JSON object (null, an array or a value).");
            _ = header.Count; // materializes the properties: a repeated name throws here (ArgumentException), not later
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or ArgumentException)
        {
            throw new InvalidDataException($"'{sourceName}': header is not a JSON object ({ex.Message}).", ex);
        }

        long dataStart = 8 + (long)headerLen;
        long dataLen = data.Length - dataStart;
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        try
        {
            // Every field is checked for its JSON kind before it is read: a header written by anyone else is hostile
            // input, and a wrong kind must come out as InvalidDataException naming the file (what every caller treats
            // as "bad file"), not as System.Text.Json's InvalidOperationException or a NullReferenceException.
            foreach (var (name, node) in header)
            {
                if (name == "__metadata__")
                {
                    var meta = node as JsonObject
                               ?? throw new InvalidDataException($"'{sourceName}': __metadata__ is not an object of strings.");
                    foreach (var (k, v) in meta)
                        metadata[k] = v is JsonValue sv && sv.GetValueKind() == JsonValueKind.String ? sv.GetValue<string>()
                            : throw new InvalidDataException($"'{sourceName}': __metadata__['{k}'] is not a string.");
                    continue;
                }
                var obj = node as JsonObject ?? throw new InvalidDataException($"'{sourceName}': entry '{name}' is not an object.");
                string code = obj["dtype"] is JsonValue dv && dv.GetValueKind() == JsonValueKind.String ? dv.GetValue<string>()
                    : throw new InvalidDataException($"'{sourceName}': tensor '{name}' has no dtype string.");
                long[] shape = Longs(obj, "shape", sourceName, name);
                long[] offs = Longs(obj, "data_offsets", sourceName, name);
                if (offs.Length != 2) throw new InvalidDataException($"'{sourceName}': tensor '{name}' needs data_offsets [begin, end].");
                if (shape.Any(d => d < 0))
                    throw new InvalidDataException($"'{sourceName}': tensor '{name}' has shape [{string.Join(",", shape)}] with a negative size.");
                int es = ElementSize(code, sourceName, name);
                long bytes;
                try { bytes = checked(shape.Aggregate(1L, (a, b) => a * b) * es); }
                catch (OverflowException)
                {
                    throw new InvalidDataException($"'{sourceName}': tensor '{name}' has shape [{string.Join(",", shape)}], more elements than any file holds.");
                }
                if (offs[0] < 0 || offs[1] < offs[0] || offs[1] > dataLen)
                    throw new InvalidDataException($"'{sourceName}': tensor '{name}' data_offsets [{offs[0]}, {offs[1]}] lie outside the {dataLen} data bytes (file truncated?).");
                if (offs[1] - offs[0] != bytes)
                    throw new InvalidDataException($"'{sourceName}': tensor '{name}' has {offs[1] - offs[0]} bytes but shape [{string.Join(",", shape)}] x {code} needs {bytes}.");
                tensors[name] = FromBytes(data.AsSpan((int)(dataStart + offs[0]), (int)(offs[1] - offs[0])), code, shape);
            }
        }
        catch
        {
            foreach (var t in tensors.Values) t.Dispose();
            throw;
        }
        return new Contents(tensors, metadata);
    }

    /// <summary>An array of integers (a shape, the data offsets); anything else is a corrupt header.</summary>
    private static long[] Longs(JsonObject entry, string field, string source, string name)
    {
        if (entry[field] is not JsonArray array)
            throw new InvalidDataException($"'{source}': tensor '{name}' has no {field} array.");
        var values = new long[array.Count];
        for (int i = 0; i < values.Length; i++)
            if (array[i] is not JsonValue v || v.GetValueKind() != JsonValueKind.Number || !v.TryGetValue(out values[i]))
                throw new InvalidDataException($"'{source}': tensor '{name}' {field}[{i}] = {array[i]?.ToJsonString() ?? "null"} is not a 64-bit integer.");
        return values;
    }

    private static string DTypeCode(string name, ScalarType t) => t switch
    {
        ScalarType.Float32 => "F32",
        ScalarType.Float64 => "F64",
        ScalarType.Int64 => "I64",
        ScalarType.Int32 => "I32",
        ScalarType.Byte => "U8",
        _ => throw new NotSupportedException($"safetensors writer: tensor '{name}' has dtype {t}; supported are float32, float64, int64, int32, uint8 (convert it first)."),
    };

    private static int ElementSize(string code) => code switch { "F64" or "I64" => 8, "F32" or "I32" => 4, "BF16" or "F16" => 2, _ => 1 };

    private static int ElementSize(string code, string source, string name) => code switch
    {
        "F64" or "I64" => 8,
        "F32" or "I32" => 4,
        "BF16" or "F16" => 2,
        "U8" => 1,
        _ => throw new InvalidDataException($"'{source}': tensor '{name}' has dtype {code}; supported are F32, F64, I64, I32, U8, BF16, F16."),
    };

    private static byte[] TensorBytes(Tensor t)
    {
        using var c = t.detach().cpu().contiguous();
        return c.bytes.ToArray();
    }

    private static Tensor FromBytes(ReadOnlySpan<byte> bytes, string code, long[] shape)
    {
        // The format is little-endian; so is every platform TorchSharp-cpu runs on here.
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("safetensors I/O assumes a little-endian host.");
        switch (code)
        {
            case "BF16":
            {
                // bfloat16 is the top half of a float32: widen by shifting into the high 16 bits.
                var f = new float[bytes.Length / 2];
                for (int i = 0; i < f.Length; i++)
                    f[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(bytes.Slice(2 * i)) << 16);
                return tensor(f, shape);
            }
            case "F16":
            {
                var f = new float[bytes.Length / 2];
                for (int i = 0; i < f.Length; i++)
                    f[i] = (float)BitConverter.UInt16BitsToHalf(BinaryPrimitives.ReadUInt16LittleEndian(bytes.Slice(2 * i)));
                return tensor(f, shape);
            }
        }
        var type = code switch
        {
            "F32" => ScalarType.Float32, "F64" => ScalarType.Float64, "I64" => ScalarType.Int64,
            "I32" => ScalarType.Int32, _ => ScalarType.Byte,
        };
        var result = empty(shape, type);
        bytes.CopyTo(result.bytes);
        return result;
    }
}
