using System.Text;

namespace Ect.Compute.Evaluation;

/// <summary>
/// Gives an ONNX model whose batch is fixed at 1 a symbolic batch axis, in memory, so ONNX Runtime can run several
/// images per call (issue 21 point 4). ResNet18.onnx (exported from CNTK) declares its input, its output and all 73
/// value_info entries as [1,C,H,W]; its operators (Conv, BatchNormalization, Relu, Add, MaxPool, AveragePool) treat the
/// first axis as a batch and hold no hard-coded shape (no Reshape, Flatten, Gemm or shape constants), so replacing
/// each leading dim_value 1 by dim_param "N" is the whole change; the weights are untouched.
/// <para>
/// A minimal protocol-buffer rewriter (no ONNX or protobuf package): only these messages are opened, every other
/// field is copied byte for byte. ModelProto.graph = 7; GraphProto.node = 1, input = 11, output = 12, value_info = 13;
/// NodeProto.op_type = 4; ValueInfoProto.type = 2; TypeProto.tensor_type = 1; TypeProto.Tensor.shape = 2;
/// TensorShapeProto.dim = 1; Dimension.dim_value = 1, dim_param = 2.
/// </para>
/// </summary>
public static class OnnxBatchAxis
{
    /// <summary>Operators that treat axis 0 as a batch and carry no shape that would pin it.</summary>
    public static readonly IReadOnlySet<string> BatchAgnosticOperators = new HashSet<string>(StringComparer.Ordinal)
    {
        "Conv", "BatchNormalization", "Relu", "Add", "MaxPool", "AveragePool", "GlobalAveragePool",
    };

    /// <summary>The name of the symbolic batch dimension written into the model.</summary>
    public const string BatchDimension = "N";

    /// <summary>
    /// The model <paramref name="model"/> with the leading dimension 1 of <paramref name="inputName"/>,
    /// <paramref name="outputName"/> and every value_info replaced by the symbolic <see cref="BatchDimension"/>.
    /// Throws InvalidDataException (naming <paramref name="source"/>) when the graph holds an operator outside
    /// <see cref="BatchAgnosticOperators"/>, or the input or output has no leading dimension 1 to rewrite.
    /// </summary>
    public static byte[] Rewrite(byte[] model, string inputName, string outputName, string source)
    {
        try
        {
            var rewritten = new HashSet<string>(StringComparer.Ordinal);
            var result = ProtobufWire.RewriteMessage(model, (number, payload) =>
                number == 7 ? RewriteGraph(payload, rewritten) : null);
            foreach (var name in new[] { inputName, outputName })
                if (!rewritten.Contains(name))
                    throw new InvalidDataException($"'{name}' has no leading dimension 1 to turn into a batch axis");
            return result;
        }
        catch (Exception e) when (e is IndexOutOfRangeException or ArgumentOutOfRangeException or OverflowException)
        {
            throw new InvalidDataException($"'{source}' is not an ONNX model this rewriter understands ({e.Message}).", e);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"'{source}': cannot give the model a batch axis: {e.Message}.", e);
        }
    }

    private static byte[] RewriteGraph(ReadOnlyMemory<byte> graph, HashSet<string> rewritten) =>
        ProtobufWire.RewriteMessage(graph, (number, payload) =>
        {
            if (number == 1)
            {
                var op = FirstString(payload, 4) ?? "";
                if (!BatchAgnosticOperators.Contains(op))
                    throw new InvalidDataException($"operator '{op}' may pin the batch size (supported: {string.Join(", ", BatchAgnosticOperators)})");
                return null;
            }
            if (number is 11 or 12 or 13)
            {
                bool changed = false;
                var valueInfo = ProtobufWire.RewriteMessage(payload, (n, type) => n != 2 ? null :
                    ProtobufWire.RewriteMessage(type, (n2, tensorType) => n2 != 1 ? null :
                        ProtobufWire.RewriteMessage(tensorType, (n3, shape) => n3 != 2 ? null : RewriteLeadingDimension(shape, ref changed))));
                if (changed) rewritten.Add(FirstString(payload, 1) ?? "");
                return valueInfo;
            }
            return null;
        });

    // TensorShapeProto: the first dim (field 1) becomes Dimension { dim_param = "N" } when it is dim_value 1.
    private static byte[] RewriteLeadingDimension(ReadOnlyMemory<byte> shape, ref bool changed)
    {
        bool first = true, did = false;
        var result = ProtobufWire.RewriteMessage(shape, (number, dim) =>
        {
            if (number != 1 || !first) return null;
            first = false;
            var fields = ProtobufWire.Fields(dim);
            if (fields.Count != 1 || fields[0].Number != 1 || fields[0].WireType != 0 || fields[0].Value != 1) return null;
            did = true;
            var param = Encoding.UTF8.GetBytes(BatchDimension);
            using var replacement = new MemoryStream();
            ProtobufWire.WriteVarint(replacement, (2 << 3) | 2);
            ProtobufWire.WriteVarint(replacement, (ulong)param.Length);
            replacement.Write(param);
            return replacement.ToArray();
        });
        changed |= did;
        return result;
    }

    private static string? FirstString(ReadOnlyMemory<byte> message, int number)
    {
        foreach (var f in ProtobufWire.Fields(message))
            if (f.Number == number && f.WireType == 2) return Encoding.UTF8.GetString(f.Bytes.Span);
        return null;
    }
}
