using Ect.Compute.Networks;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Ect.Compute.Evaluation;

/// <summary>
/// Runs a feed-forward ONNX image network (<see cref="OnnxGraph"/>) natively in TorchSharp, batched, with the
/// model's own weights: Conv (groups 1, optional bias, asymmetric pads), BatchNormalization (inference), Relu, Add,
/// MaxPool and AveragePool (no padding counted) — what ResNet18.onnx of Microsoft.ML.DnnImageFeaturizer.ResNet18 uses.
/// A BatchNormalization that directly follows a Conv whose output nothing else reads is folded into that Conv
/// (weights w a, bias b: the folding ONNX Runtime's graph optimiser does too), so its pass over the activations is
/// saved. Any other operator is refused when the network is built, naming it and the model file.
/// </summary>
public sealed class OnnxTorchNetwork : IDisposable
{
    private sealed record Step(OnnxNode Node, Tensor? Weight, Tensor? Bias, Tensor? Scale, Tensor? Shift);

    private readonly List<Step> _steps = [];
    // Deviation from plain TorchSharp style (as FeatureStatisticsAccumulator): no operator with an implicit Scalar
    // (a + b's alpha); TorchSharp 0.107 may let the GC free such a Scalar while libtorch reads it when another thread
    // allocates (the trainer, beside an in-run evaluator). This one lives as long as the network.
    private readonly Scalar _one = 1.0.ToScalar();
    private readonly string _input;
    private readonly string _output;
    private readonly Dictionary<string, int> _lastUse = []; // value name -> index of the last step that reads it

    public OnnxTorchNetwork(OnnxGraph graph, string inputName, string outputName, string modelPath)
    {
        _input = inputName;
        _output = outputName;
        var readers = new Dictionary<string, int>();
        foreach (var n in graph.Nodes)
            foreach (var i in n.Inputs)
                readers[i] = readers.GetValueOrDefault(i) + 1;
        if (!graph.Nodes.Any(n => n.Inputs.Contains(inputName)) || !graph.Nodes.Any(n => n.Outputs.Contains(outputName)))
            throw new InvalidDataException($"'{modelPath}': no node reads '{inputName}' or none writes '{outputName}'.");

        Tensor Init(string name) => graph.Initializers.TryGetValue(name, out var t)
            ? tensor(t.Values, t.Dims)
            : throw new InvalidDataException($"'{modelPath}': initializer '{name}' (a weight) is missing.");

        using var noGrad = no_grad();
        for (int k = 0; k < graph.Nodes.Count; k++)
        {
            var n = graph.Nodes[k];
            switch (n.OpType)
            {
                case "Conv":
                {
                    if (n.Int("group", 1) != 1 || n.IntList("dilations", [1, 1]).Any(d => d != 1))
                        throw new NotSupportedException($"'{modelPath}': Conv '{n.Outputs[0]}' has groups or dilation; only plain convolutions are supported.");
                    var w = Init(n.Inputs[1]);
                    var b = n.Inputs.Count > 2 && n.Inputs[2] != "" ? Init(n.Inputs[2]) : null;
                    // Fold a following BatchNormalization that alone reads this output.
                    if (k + 1 < graph.Nodes.Count && graph.Nodes[k + 1] is { OpType: "BatchNormalization" } bn &&
                        bn.Inputs[0] == n.Outputs[0] && readers.GetValueOrDefault(n.Outputs[0]) == 1)
                    {
                        var (scale, shift) = BatchNormAffine(bn, Init);
                        var folded = w * scale.reshape(-1, 1, 1, 1);
                        var foldedBias = b is null ? shift : (b * scale).Plus(shift);
                        w.Dispose(); b?.Dispose(); scale.Dispose();
                        _steps.Add(new Step(n with { Outputs = bn.Outputs }, folded, foldedBias, null, null));
                        k++;
                    }
                    else _steps.Add(new Step(n, w, b, null, null));
                    break;
                }
                case "BatchNormalization":
                {
                    var (scale, shift) = BatchNormAffine(n, Init);
                    var scale4 = scale.reshape(1, -1, 1, 1);
                    var shift4 = shift.reshape(1, -1, 1, 1);
                    scale.Dispose();
                    shift.Dispose();
                    _steps.Add(new Step(n, null, null, scale4, shift4));
                    break;
                }
                case "Relu" or "Add" or "MaxPool" or "AveragePool":
                    _steps.Add(new Step(n, null, null, null, null));
                    break;
                default:
                    throw new NotSupportedException($"'{modelPath}': ONNX operator '{n.OpType}' (node output '{n.Outputs.FirstOrDefault()}') is not supported by the native runner.");
            }
        }
        IndexLastUses();
    }

    private void IndexLastUses()
    {
        for (int k = 0; k < _steps.Count; k++)
            foreach (var name in _steps[k].Node.Inputs)
                _lastUse[name] = k;
    }

    /// <summary>BatchNormalization (X, scale, B, mean, var; epsilon) as y = x a + c with a = scale / sqrt(var + eps), c = B - mean a.</summary>
    private static (Tensor Scale, Tensor Shift) BatchNormAffine(OnnxNode bn, Func<string, Tensor> init)
    {
        using var gamma = init(bn.Inputs[1]);
        using var beta = init(bn.Inputs[2]);
        using var mean = init(bn.Inputs[3]);
        using var variance = init(bn.Inputs[4]);
        double eps = bn.Float("epsilon", 1e-5f);
        // In float64, as an exact fold would be; rounded once to float32.
        using var a64 = gamma.to(float64) / variance.to(float64).Plus(eps).sqrt();
        using var c64 = beta.to(float64) - mean.to(float64) * a64;
        return (a64.to(float32), c64.to(float32));
    }

    /// <summary>The output for input [N,C,H,W] float32 (no autograd).</summary>
    public Tensor Forward(Tensor input)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var values = new Dictionary<string, Tensor> { [_input] = input };
        for (int k = 0; k < _steps.Count; k++)
        {
            var s = _steps[k];
            var n = s.Node;
            Tensor x = values[n.Inputs[0]];
            Tensor y = n.OpType switch
            {
                "Conv" => Conv(x, s),
                "BatchNormalization" => (x * s.Scale!).Plus(s.Shift!),
                "Relu" => F.relu(x),
                "Add" => x.add(values[n.Inputs[1]], _one),
                "MaxPool" => MaxPool(x, n),
                "AveragePool" => AveragePool(x, n),
                _ => throw new InvalidOperationException(n.OpType),
            };
            values[n.Outputs[0]] = y;
            // Intermediates are freed after their last reader: activations of a chunk are tens of MB each, and the
            // memory of a freed one is reused for the next instead of fresh pages (measured: 5x the CPU time otherwise).
            foreach (var name in n.Inputs)
                if (_lastUse.GetValueOrDefault(name, -1) == k && name != _input && name != _output && values.Remove(name, out var dead))
                    dead.Dispose();
        }
        return values[_output].MoveToOuterDisposeScope();
    }

    private Tensor Conv(Tensor x, Step s)
    {
        var n = s.Node;
        long[] strides = n.IntList("strides", [1, 1]);
        long[] pads = n.IntList("pads", [0, 0, 0, 0]); // ONNX: [top, left, bottom, right]
        if (strides[0] != strides[1]) throw new NotSupportedException($"Conv '{n.Outputs[0]}': unequal strides.");
        long padding = 0;
        if (pads.All(p => p == pads[0])) padding = pads[0];
        else x = F.pad(x, [pads[1], pads[3], pads[0], pads[2]]);
        var y = ChannelPaddedConvolution.Conv2d(x, s.Weight!, stride: strides[0], padding: padding);
        if (s.Bias is null) return y;
        using var bias = s.Bias.reshape(1, -1, 1, 1);
        return y.add(bias, _one);
    }

    private static Tensor MaxPool(Tensor x, OnnxNode n)
    {
        long[] k = n.IntList("kernel_shape", []), st = n.IntList("strides", [1, 1]), pads = n.IntList("pads", [0, 0, 0, 0]);
        if (pads.Any(p => p != 0)) x = F.pad(x, [pads[1], pads[3], pads[0], pads[2]], value: double.NegativeInfinity);
        return F.max_pool2d(x, k, st);
    }

    private static Tensor AveragePool(Tensor x, OnnxNode n)
    {
        long[] k = n.IntList("kernel_shape", []), st = n.IntList("strides", [1, 1]), pads = n.IntList("pads", [0, 0, 0, 0]);
        if (pads.Any(p => p != 0)) throw new NotSupportedException($"AveragePool '{n.Outputs[0]}' with padding is not supported.");
        return F.avg_pool2d(x, k, st);
    }

    public void Dispose()
    {
        foreach (var s in _steps)
        {
            s.Weight?.Dispose();
            s.Bias?.Dispose();
            s.Scale?.Dispose();
            s.Shift?.Dispose();
        }
        _steps.Clear();
        _one.Dispose();
    }
}
