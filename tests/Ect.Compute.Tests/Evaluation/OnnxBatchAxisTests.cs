using System.Text;
using Ect.Compute.Evaluation;
using FluentAssertions;
using Microsoft.ML.OnnxRuntime;
using Xunit;

namespace Ect.Compute.Tests.Evaluation;

/// <summary><see cref="OnnxBatchAxis"/>: the shipped ResNet18.onnx gets a symbolic batch axis and keeps its weights; models
/// it cannot safely rewrite, or bytes that are not a model, are refused with the file named.</summary>
public class OnnxBatchAxisTests
{
    static readonly string Model = ResNet18OnnxExtractor.DefaultModelPath;

    [Fact]
    public void The_shipped_model_gets_a_symbolic_batch_axis_and_keeps_its_graph_and_weights()
    {
        var original = File.ReadAllBytes(Model);
        var rewritten = OnnxBatchAxis.Rewrite(original, ResNet18OnnxExtractor.InputName, ResNet18OnnxExtractor.OutputName, Model);
        using var options = new SessionOptions();
        using var before = new InferenceSession(original, options);
        using var after = new InferenceSession(rewritten, options);
        before.InputMetadata[ResNet18OnnxExtractor.InputName].Dimensions.Should().Equal(1, 3, 224, 224);
        after.InputMetadata[ResNet18OnnxExtractor.InputName].Dimensions.Should().Equal(-1, 3, 224, 224);
        after.InputMetadata[ResNet18OnnxExtractor.InputName].SymbolicDimensions[0].Should().Be(OnnxBatchAxis.BatchDimension);
        after.OutputMetadata[ResNet18OnnxExtractor.OutputName].Dimensions.Should().Equal(-1, 512, 1, 1);

        // Same nodes, same initializers bit for bit: only shapes changed.
        var dir = Directory.CreateTempSubdirectory("ect-onnx-batch-").FullName;
        try
        {
            var path = Path.Combine(dir, "batched.onnx");
            File.WriteAllBytes(path, rewritten);
            var g0 = OnnxGraph.Load(Model);
            var g1 = OnnxGraph.Load(path);
            g1.Nodes.Select(n => n.OpType).Should().Equal(g0.Nodes.Select(n => n.OpType));
            g1.Initializers.Keys.Should().BeEquivalentTo(g0.Initializers.Keys);
            foreach (var (name, init) in g0.Initializers)
            {
                g1.Initializers[name].Dims.Should().Equal(init.Dims);
                g1.Initializers[name].Values.Should().Equal(init.Values, $"weights of '{name}' are copied unchanged");
            }
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void A_graph_with_an_operator_that_may_pin_the_batch_is_refused()
    {
        // ModelProto { graph { node { op_type "Reshape" }, input { name "x" [1,4] } } }
        var model = Message(7, Concat(Message(1, String(4, "Reshape")), Message(11, ValueInfo("x", 1, 4))));
        var act = () => OnnxBatchAxis.Rewrite(model, "x", "x", "/models/reshape.onnx");
        act.Should().Throw<InvalidDataException>().WithMessage("*/models/reshape.onnx*Reshape*");
    }

    [Fact]
    public void A_model_whose_input_has_no_leading_dimension_1_is_refused()
    {
        var model = Message(7, Concat(Message(1, String(4, "Relu")), Message(11, ValueInfo("x", 8, 4)), Message(12, ValueInfo("y", 1, 4))));
        var act = () => OnnxBatchAxis.Rewrite(model, "x", "y", "/models/batch8.onnx");
        act.Should().Throw<InvalidDataException>().WithMessage("*/models/batch8.onnx*'x'*leading dimension 1*");
        // The same graph with [1,4] input is rewritten, and only the leading dimension changes.
        var ok = Message(7, Concat(Message(1, String(4, "Relu")), Message(11, ValueInfo("x", 1, 4)), Message(12, ValueInfo("y", 1, 4))));
        var rewritten = OnnxBatchAxis.Rewrite(ok, "x", "y", "ok.onnx");
        Encoding.UTF8.GetString(rewritten).Should().Contain("\u0012\u0001N", "the first dimension is now dim_param \"N\"");
    }

    [Theory]
    [InlineData(new byte[] { 0x3a, 0x7f, 0x01 })]        // graph claims 127 bytes, 1 left
    [InlineData(new byte[] { 0x3a, 0x02, 0x0a, 0xff })]  // a node whose length varint is cut off
    [InlineData(new byte[] { 0x3b })]                    // wire type 3 (groups): not in ONNX
    [InlineData(new byte[] { 0x08, 0xff, 0xff })]        // truncated varint
    public void Bytes_that_are_not_a_model_are_refused_with_the_file_named(byte[] bytes)
    {
        var act = () => OnnxBatchAxis.Rewrite(bytes, "x", "y", "/data/broken.onnx");
        act.Should().Throw<InvalidDataException>().WithMessage("*/data/broken.onnx*");
    }

    // Minimal protobuf writers for hand-made models.
    static byte[] ValueInfo(string name, params long[] dims) =>
        Concat(String(1, name), Message(2, Message(1, Concat(Varint(1, 1), Message(2, Concat(dims.Select(d => Message(1, Varint(1, (ulong)d))).ToArray()))))));

    static byte[] String(int field, string s) => Message(field, Encoding.UTF8.GetBytes(s));

    static byte[] Message(int field, byte[] payload) => Concat(Raw(((ulong)field << 3) | 2), Raw((ulong)payload.Length), payload);

    static byte[] Varint(int field, ulong value) => Concat(Raw((ulong)field << 3), Raw(value));

    static byte[] Raw(ulong v)
    {
        var b = new List<byte>();
        while (v >= 0x80) { b.Add((byte)(v | 0x80)); v >>= 7; }
        b.Add((byte)v);
        return b.ToArray();
    }

    static byte[] Concat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();
}
