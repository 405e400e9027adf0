using System.Text;

namespace Ect.Compute.Evaluation;

/// <summary>One node of an ONNX graph: operator, input and output names, and its int / ints / float attributes.</summary>
public sealed record OnnxNode(string OpType, IReadOnlyList<string> Inputs, IReadOnlyList<string> Outputs,
    IReadOnlyDictionary<string, long> Ints, IReadOnlyDictionary<string, long[]> IntLists, IReadOnlyDictionary<string, float> Floats)
{
    public long Int(string name, long fallback) => Ints.TryGetValue(name, out var v) ? v : fallback;
    public long[] IntList(string name, long[] fallback) => IntLists.TryGetValue(name, out var v) ? v : fallback;
    public float Float(string name, float fallback) => Floats.TryGetValue(name, out var v) ? v : fallback;
}

/// <summary>A float32 initializer (weights) of an ONNX graph.</summary>
public sealed record OnnxInitializer(string Name, long[] Dims, float[] Values);

/// <summary>
/// The parts of an ONNX model (onnx.proto3 ModelProto) that a feed-forward image network needs: the nodes in graph
/// order and the float32 initializers, read with a minimal protocol-buffer reader (no ONNX or protobuf package:
/// the fields used are ModelProto.graph = 7; GraphProto.node = 1, initializer = 5; NodeProto.input = 1, output = 2,
/// op_type = 4, attribute = 5; AttributeProto.name = 1, f = 2, i = 3, ints = 8; TensorProto.dims = 1,
/// data_type = 2, float_data = 4, name = 8, raw_data = 9). Anything else in the file is skipped.
/// </summary>
public sealed class OnnxGraph
{
    public IReadOnlyList<OnnxNode> Nodes { get; }
    public IReadOnlyDictionary<string, OnnxInitializer> Initializers { get; }

    private OnnxGraph(IReadOnlyList<OnnxNode> nodes, IReadOnlyDictionary<string, OnnxInitializer> initializers)
    {
        Nodes = nodes;
        Initializers = initializers;
    }

    /// <summary>Reads <paramref name="path"/>; a file that is not such a model gives an InvalidDataException naming it.</summary>
    public static OnnxGraph Load(string path) => Parse(File.ReadAllBytes(path), path);

    /// <summary>Reads a model held in memory; <paramref name="source"/> names it in errors.</summary>
    public static OnnxGraph Parse(byte[] bytes, string source)
    {
        var path = source;
        try
        {
            ReadOnlyMemory<byte>? graph = null;
            foreach (var f in ProtobufWire.Fields(bytes))
                if (f.Number == 7 && f.WireType == 2) graph = f.Bytes;
            if (graph is null) throw new InvalidDataException("no graph (ModelProto field 7)");
            var nodes = new List<OnnxNode>();
            var inits = new Dictionary<string, OnnxInitializer>();
            foreach (var f in ProtobufWire.Fields(graph.Value))
            {
                if (f.WireType != 2) continue;
                if (f.Number == 1) nodes.Add(ReadNode(f.Bytes));
                else if (f.Number == 5 && ReadInitializer(f.Bytes) is { } init) inits[init.Name] = init;
            }
            if (nodes.Count == 0) throw new InvalidDataException("the graph has no nodes");
            return new OnnxGraph(nodes, inits);
        }
        catch (Exception e) when (e is InvalidDataException or IndexOutOfRangeException or ArgumentOutOfRangeException or OverflowException)
        {
            throw new InvalidDataException($"'{path}' is not an ONNX model this reader understands ({e.Message}).", e);
        }
    }

    private static OnnxNode ReadNode(ReadOnlyMemory<byte> b)
    {
        var inputs = new List<string>();
        var outputs = new List<string>();
        string op = "";
        var ints = new Dictionary<string, long>();
        var lists = new Dictionary<string, long[]>();
        var floats = new Dictionary<string, float>();
        foreach (var f in ProtobufWire.Fields(b))
        {
            switch (f.Number)
            {
                case 1 when f.WireType == 2: inputs.Add(Utf8(f.Bytes)); break;
                case 2 when f.WireType == 2: outputs.Add(Utf8(f.Bytes)); break;
                case 4 when f.WireType == 2: op = Utf8(f.Bytes); break;
                case 5 when f.WireType == 2:
                    string name = "";
                    long? i = null;
                    float? fl = null;
                    var list = new List<long>();
                    foreach (var a in ProtobufWire.Fields(f.Bytes))
                    {
                        if (a.Number == 1 && a.WireType == 2) name = Utf8(a.Bytes);
                        else if (a.Number == 2 && a.WireType == 5) fl = BitConverter.Int32BitsToSingle((int)a.Value);
                        else if (a.Number == 3 && a.WireType == 0) i = (long)a.Value;
                        else if (a.Number == 8 && a.WireType == 0) list.Add((long)a.Value);
                        else if (a.Number == 8 && a.WireType == 2) list.AddRange(PackedVarints(a.Bytes));
                    }
                    if (i is { } iv) ints[name] = iv;
                    if (fl is { } fv) floats[name] = fv;
                    if (list.Count > 0) lists[name] = list.ToArray();
                    break;
            }
        }
        return new OnnxNode(op, inputs, outputs, ints, lists, floats);
    }

    private static OnnxInitializer? ReadInitializer(ReadOnlyMemory<byte> b)
    {
        var dims = new List<long>();
        long dataType = 0;
        string name = "";
        float[]? values = null;
        var floatData = new List<float>();
        foreach (var f in ProtobufWire.Fields(b))
        {
            switch (f.Number)
            {
                case 1 when f.WireType == 0: dims.Add((long)f.Value); break;
                case 1 when f.WireType == 2: dims.AddRange(PackedVarints(f.Bytes)); break;
                case 2 when f.WireType == 0: dataType = (long)f.Value; break;
                case 4 when f.WireType == 5: floatData.Add(BitConverter.Int32BitsToSingle((int)f.Value)); break;
                case 4 when f.WireType == 2:
                    var packed = f.Bytes.Span;
                    for (int k = 0; k + 4 <= packed.Length; k += 4) floatData.Add(BitConverter.ToSingle(packed[k..(k + 4)]));
                    break;
                case 8 when f.WireType == 2: name = Utf8(f.Bytes); break;
                case 9 when f.WireType == 2:
                    var raw = f.Bytes.Span;
                    values = new float[raw.Length / 4];
                    for (int k = 0; k < values.Length; k++) values[k] = BitConverter.ToSingle(raw[(4 * k)..(4 * k + 4)]);
                    break;
            }
        }
        if (dataType != 1) return null; // only float32 initializers are used by the supported operators
        values ??= floatData.ToArray();
        long count = dims.Aggregate(1L, (p, d) => p * d);
        if (values.Length != count)
            throw new InvalidDataException($"initializer '{name}' has {values.Length} values for dims [{string.Join(",", dims)}]");
        return new OnnxInitializer(name, dims.ToArray(), values);
    }

    private static string Utf8(ReadOnlyMemory<byte> b) => Encoding.UTF8.GetString(b.Span);

    private static IEnumerable<long> PackedVarints(ReadOnlyMemory<byte> b)
    {
        int pos = 0;
        var list = new List<long>();
        while (pos < b.Length) list.Add((long)ProtobufWire.Varint(b.Span, ref pos));
        return list;
    }
}
