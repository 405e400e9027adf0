using System.Runtime.InteropServices;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Ect.Compute.Evaluation;

/// <summary>
/// Folds a grey image's three identical input planes into the first convolution of a network, in memory (issue 21
/// point 4: `ect eval` of 10,000 samples under 3 minutes). A grey image enters ResNet18.onnx as the three planes
/// g - m_B, g - m_G, g - m_R (g the resized grey image in 0-255, m the package's per-pixel mean image), and the first
/// operator is a bias-free Conv, which is linear: conv(W, [g - m_c]_c) = conv(sum_c W_c, g) - conv(W, m). So the
/// rewritten model takes g alone, one plane: its first Conv has the weights summed over the input channels
/// [O,1,kh,kw], and an Add of the constant map -conv(W, m) [1,O,Ho,Wo] (same pads and strides) follows it. The same
/// features up to float rounding (the order of the additions changes); conv1's multiply-adds drop to a third (118M to
/// 39M of ResNet-18's 1.82G per image) and the input to copy and the mean image to subtract go away.
/// <para>
/// The Add sits between conv1 and its BatchNormalization, which keeps ONNX Runtime from fusing the two. Session 14
/// tried it after the BatchNormalization (the map scaled per channel by scale / sqrt(var + epsilon), features equal to
/// 8e-7 relative): the extraction bench did not change (`Ect.Bench fd-resnet18 --compare 16,16:planes`, 84-96 img/s
/// either way), and `ect eval` runs with it were mostly slow (3 of 13 fast; this placement 15 of 21). `ect eval` is
/// bimodal in every build tried: slow runs (10,000 samples 184-193 s against 143-162 s) spend the extra CPU in torch's
/// SiLU on the sampler threads (Sleef's expf 7-14% of the CPU samples against 0.2%, stalled as on denormal results),
/// not in ONNX Runtime. Until that is understood (the issue 21 note says how to look), this placement stays.
/// </para>
/// <para>
/// Protocol-buffer fields used besides <see cref="OnnxBatchAxis"/>'s: GraphProto.initializer = 5, value_info = 13;
/// NodeProto.input = 1, output = 2; TensorProto.dims = 1, data_type = 2, float_data = 4, name = 8, raw_data = 9.
/// </para>
/// </summary>
public static class OnnxGreyInput
{
    /// <summary>The constant map's initializer name, and the suffix of the first Conv's new output.</summary>
    public const string OffsetName = "ect_grey_input_offset";

    /// <summary>
    /// The model <paramref name="model"/> rewritten to take one grey plane [N,1,H,W] in 0-255 at
    /// <paramref name="inputName"/>, given the mean image [1,3,H,W] its three planes would have had subtracted.
    /// Throws InvalidDataException naming <paramref name="source"/> when the input does not feed exactly one bias-free,
    /// ungrouped, undilated Conv on three channels.
    /// </summary>
    public static byte[] Rewrite(byte[] model, string inputName, Tensor meanImage, string source)
    {
        try
        {
            var graph = OnnxGraph.Parse(model, source);
            var consumers = graph.Nodes.Where(n => n.Inputs.Contains(inputName)).ToList();
            if (consumers.Count != 1 || consumers[0].OpType != "Conv" || consumers[0].Inputs.Count != 2 || consumers[0].Inputs[0] != inputName)
                throw new InvalidDataException($"'{inputName}' must feed exactly one bias-free Conv (it feeds {string.Join(", ", consumers.Select(c => c.OpType))})");
            var conv = consumers[0];
            if (conv.Int("group", 1) != 1 || conv.IntList("dilations", [1, 1]).Any(d => d != 1))
                throw new InvalidDataException("the first Conv is grouped or dilated");
            if (graph.Nodes.Count(n => n.Inputs.Contains(conv.Inputs[1])) != 1)
                throw new InvalidDataException($"the first Conv's weights '{conv.Inputs[1]}' are used elsewhere too");
            var w = graph.Initializers[conv.Inputs[1]];
            if (w.Dims.Length != 4 || w.Dims[1] != 3)
                throw new InvalidDataException($"the first Conv's weights are [{string.Join(",", w.Dims)}], not [O,3,kh,kw]");
            long[] pads = conv.IntList("pads", [0, 0, 0, 0]), strides = conv.IntList("strides", [1, 1]);
            if (pads.Length != 4 || strides.Length != 2) throw new InvalidDataException("the first Conv's pads or strides are not 2-d");

            using var scope = NewDisposeScope();
            var weight = tensor(w.Values, w.Dims);
            var summed = weight.sum(1, keepdim: true).contiguous();
            // ONNX pads [top, left, bottom, right]; F.pad takes (left, right, top, bottom).
            var padded = F.pad(meanImage.to(float32), [pads[1], pads[3], pads[0], pads[2]]);
            var offset = F.conv2d(padded, weight, strides: strides).neg().contiguous();
            string convOut = conv.Outputs[0], convRaw = convOut + "_" + OffsetName;

            return ProtobufWire.RewriteMessage(model, (number, payload) => number != 7 ? null : RewriteGraph(payload, inputName, conv, convOut, convRaw,
                FloatTensorProto(conv.Inputs[1], summed), FloatTensorProto(OffsetName, offset)));
        }
        catch (Exception e) when (e is IndexOutOfRangeException or ArgumentOutOfRangeException or OverflowException or KeyNotFoundException)
        {
            throw new InvalidDataException($"'{source}' is not an ONNX model this rewriter understands ({e.Message}).", e);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"'{source}': cannot fold a grey input into the first convolution: {e.Message}.", e);
        }
    }

    private static byte[] RewriteGraph(ReadOnlyMemory<byte> graph, string inputName, OnnxNode conv, string convOut, string convRaw,
        byte[] newWeights, byte[] offset)
    {
        bool convSeen = false, weightsSeen = false, inputSeen = false;
        using var output = new MemoryStream(graph.Length + offset.Length + 256);
        foreach (var f in ProtobufWire.Fields(graph))
        {
            if (f.WireType == 2 && f.Number == 1 && !convSeen && IsNode(f.Bytes, conv, convOut))
            {
                convSeen = true;
                // The Conv writes convRaw; an Add of the offset map writes the name the rest of the graph reads.
                ProtobufWire.WriteField(output, 1, ProtobufWire.RewriteMessage(f.Bytes, (n, p) => n == 2 && Encoding.UTF8.GetString(p.Span) == convOut ? Encoding.UTF8.GetBytes(convRaw) : null));
                ProtobufWire.WriteField(output, 1, AddNode(convRaw, OffsetName, convOut));
                continue;
            }
            if (f.WireType == 2 && f.Number == 5 && NameOf(f.Bytes, 8) == conv.Inputs[1])
            {
                weightsSeen = true;
                ProtobufWire.WriteField(output, 5, newWeights);
                continue;
            }
            if (f.WireType == 2 && f.Number == 11 && NameOf(f.Bytes, 1) == inputName)
            {
                inputSeen = true;
                ProtobufWire.WriteField(output, 11, RewriteChannels(f.Bytes));
                continue;
            }
            output.Write(graph.Span[f.Start..f.End]);
        }
        if (!convSeen || !weightsSeen || !inputSeen)
            throw new InvalidDataException($"the graph lacks the Conv, its weights or the input's declaration (found {convSeen}, {weightsSeen}, {inputSeen})");
        ProtobufWire.WriteField(output, 5, offset);
        return output.ToArray();
    }

    private static bool IsNode(ReadOnlyMemory<byte> node, OnnxNode conv, string convOut)
    {
        var outputs = ProtobufWire.Fields(node).Where(f => f.Number == 2 && f.WireType == 2).Select(f => Encoding.UTF8.GetString(f.Bytes.Span)).ToList();
        return outputs.Count == 1 && outputs[0] == convOut && NameOf(node, 4) == conv.OpType;
    }

    // ValueInfoProto.type.tensor_type.shape: the second dim (channels) 3 becomes 1.
    private static byte[] RewriteChannels(ReadOnlyMemory<byte> valueInfo)
    {
        bool changed = false;
        var result = ProtobufWire.RewriteMessage(valueInfo, (n, type) => n != 2 ? null :
            ProtobufWire.RewriteMessage(type, (n2, tensorType) => n2 != 1 ? null :
                ProtobufWire.RewriteMessage(tensorType, (n3, shape) =>
                {
                    if (n3 != 2) return null;
                    int index = 0;
                    return ProtobufWire.RewriteMessage(shape, (n4, dim) =>
                    {
                        if (n4 != 1 || index++ != 1) return null;
                        var fields = ProtobufWire.Fields(dim);
                        if (fields.Count != 1 || fields[0].Number != 1 || fields[0].Value != 3) throw new InvalidDataException("the input's channel dimension is not 3");
                        changed = true;
                        using var d = new MemoryStream();
                        ProtobufWire.WriteVarint(d, 1 << 3);
                        ProtobufWire.WriteVarint(d, 1);
                        return d.ToArray();
                    });
                })));
        if (!changed) throw new InvalidDataException("the input declares no channel dimension");
        return result;
    }

    private static byte[] AddNode(string a, string b, string output)
    {
        using var node = new MemoryStream();
        WriteString(node, 1, a);
        WriteString(node, 1, b);
        WriteString(node, 2, output);
        WriteString(node, 3, output + "_add");
        WriteString(node, 4, "Add");
        return node.ToArray();
    }

    // TensorProto { dims, data_type = FLOAT, name, raw_data (little-endian float32) }.
    private static byte[] FloatTensorProto(string name, Tensor values)
    {
        using var t = new MemoryStream();
        foreach (var d in values.shape) { ProtobufWire.WriteVarint(t, 1 << 3); ProtobufWire.WriteVarint(t, (ulong)d); }
        ProtobufWire.WriteVarint(t, 2 << 3);
        ProtobufWire.WriteVarint(t, 1);
        WriteString(t, 8, name);
        var floats = values.data<float>().ToArray();
        ProtobufWire.WriteField(t, 9, MemoryMarshal.AsBytes(floats.AsSpan()).ToArray());
        return t.ToArray();
    }

    private static void WriteString(Stream s, int number, string value) => ProtobufWire.WriteField(s, number, Encoding.UTF8.GetBytes(value));

    private static string? NameOf(ReadOnlyMemory<byte> message, int number)
    {
        foreach (var f in ProtobufWire.Fields(message))
            if (f.Number == number && f.WireType == 2) return Encoding.UTF8.GetString(f.Bytes.Span);
        return null;
    }
}
