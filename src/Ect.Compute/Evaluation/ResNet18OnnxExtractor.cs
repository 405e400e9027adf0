using Microsoft.ML.OnnxRuntime;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Ect.Compute.Evaluation;

/// <summary>
/// "FD-ResNet18": 512-d pooled penultimate features of the ImageNet ResNet-18 that ships with the NuGet package
/// Microsoft.ML.DnnImageFeaturizer.ResNet18 0.23.1 (<c>ResNet18.onnx</c>, exported from CNTK), run with ONNX Runtime.
/// A cheap stand-in for FID on 2 CPU cores; its values are not FID values and must never be reported as FID.
/// <para>
/// Preprocessing = ML.NET DnnImageFeaturizer's: bilinear resize to 224x224 (align_corners=False; ML.NET's own resizer
/// may differ slightly), pixel planes in 0-255, then the package's <c>ResNetPreprocess.onnx</c> graph: RGB planes -> BGR,
/// minus a per-pixel 3x224x224 mean image (channel averages B 103.06, G 115.90, R 123.15; per pixel they vary by about
/// +-13), no division by a std. The mean image is read once, by running that graph on a zero image.
/// </para>
/// <para>
/// The network (input <c>Input247</c> [1,3,224,224], output <c>Pooling395_Output_0</c> [1,512,1,1]) has its batch fixed
/// at 1, so ONNX Runtime runs a batch image by image (the default). With <c>nativeNetwork</c> it runs natively batched
/// in TorchSharp instead (<see cref="OnnxTorchNetwork"/>: the model's own graph and weights, chunks of
/// <see cref="NativeChunk"/> images, torch threads = the extractor's threads); the two agree to 1e-4 relative in
/// features and in the Fréchet distance (ResNet18OnnxExtractorTests). Measured 2026-12-01 on this project's 2-core AMD
/// EPYC host (bench fd-resnet18, 28x28 images, machine loaded, CPU time per image incl. preprocessing): ONNX Runtime
/// ~39 ms; native with oneDNN ~91 ms (oneDNN reorders activations and weights to its blocked layout around every
/// convolution: 138 + 57 reorders for 66 convolutions per chunk), native with oneDNN off ~51 ms. So ONNX Runtime stays
/// the default. Deterministic for a fixed thread count (and, natively, chunk size).
/// </para>
/// </summary>
public sealed class ResNet18OnnxExtractor : IFeatureExtractor
{
    public const string MetricName = "FD-ResNet18";
    public const int InputSize = 224;
    public const string InputName = "Input247";
    public const string OutputName = "Pooling395_Output_0";

    /// <summary>Channel averages of the package's mean image, in the model's plane order B, G, R (for reference).</summary>
    public static readonly float[] ChannelMeansBgr = [103.06f, 115.90f, 123.15f];

    readonly Tensor _meanImageBgr;   // [1,3,224,224] float32, subtracted from the BGR 0-255 planes

    /// <summary>Images per native forward pass: activations of 8 images are ~26 MB at the first layer, below glibc's
    /// largest mmap threshold, so freed activation memory is reused rather than mapped afresh (page faults).</summary>
    public const int NativeChunk = 8;

    readonly OnnxTorchNetwork? _native;
    readonly InferenceSession? _session;
    readonly SessionOptions? _options;
    readonly RunOptions _runOptions = new();
    readonly float[] _input = new float[3 * InputSize * InputSize];
    readonly float[] _output = new float[512];
    readonly OrtValue? _inputValue;
    readonly OrtValue? _outputValue;
    readonly object _lock = new();

    /// <param name="intraOpThreads">ONNX Runtime intra-op threads (the machine has 2 cores; 2 is the measured default).</param>
    /// <param name="modelPath">ResNet18.onnx; null: <see cref="DefaultModelPath"/> in the build output.</param>
    /// <param name="preprocessPath">ResNetPreprocess.onnx; null: <see cref="DefaultPreprocessPath"/>.</param>
    /// <param name="allowSpinning">Let ONNX Runtime's intra-op threads spin while idle (off by default, see below).</param>
    /// <param name="nativeNetwork">Run the network natively batched in TorchSharp instead of ONNX Runtime image by image.</param>
    public ResNet18OnnxExtractor(int intraOpThreads = 2, string? modelPath = null, string? preprocessPath = null, bool allowSpinning = false,
        bool nativeNetwork = false)
    {
        if (intraOpThreads < 1) throw new ArgumentOutOfRangeException(nameof(intraOpThreads), intraOpThreads, "Threads must be at least 1.");
        ModelPath = modelPath ?? DefaultModelPath;
        if (!File.Exists(ModelPath))
            throw new FileNotFoundException(
                $"{MetricName}: model file '{ModelPath}' not found. It ships with the NuGet package " +
                "Microsoft.ML.DnnImageFeaturizer.ResNet18 (0.23.1), whose build props copy it to <output>/DnnImageModels/ResNet18Onnx/; " +
                "reference that package from the program's project, or pass the path of ResNet18.onnx.", ModelPath);
        Threads = intraOpThreads;
        UsesOnnxRuntime = !nativeNetwork;
        _meanImageBgr = ReadMeanImage(preprocessPath ?? DefaultPreprocessPath).DetachFromDisposeScope();
        if (nativeNetwork)
        {
            _native = new OnnxTorchNetwork(OnnxGraph.Load(ModelPath), InputName, OutputName, ModelPath);
            return;
        }
        _options = new SessionOptions
        {
            IntraOpNumThreads = intraOpThreads,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        };
        // Spinning intra-op threads busy-wait between ops; they then compete with TorchSharp's threads (generation runs
        // between extraction batches in the same process) and with other processes. Measured on the shared 2-core
        // machine under load: 70 ms CPU per image without spinning vs 100 ms with.
        if (!allowSpinning)
            _options.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
        _session = new InferenceSession(ModelPath, _options);
        if (!_session.InputMetadata.ContainsKey(InputName) || !_session.OutputMetadata.ContainsKey(OutputName))
            throw new InvalidDataException(
                $"{MetricName}: '{ModelPath}' does not have input '{InputName}' and output '{OutputName}' " +
                $"(inputs: {string.Join(", ", _session.InputMetadata.Keys)}; outputs: {string.Join(", ", _session.OutputMetadata.Keys)}).");
        _inputValue = OrtValue.CreateTensorValueFromMemory(_input, [1, 3, InputSize, InputSize]);
        _outputValue = OrtValue.CreateTensorValueFromMemory(_output, [1, 512, 1, 1]);
    }

    /// <summary>&lt;app base&gt;/DnnImageModels/ResNet18Onnx/ResNet18.onnx.</summary>
    public static string DefaultModelPath => Path.Combine(AppContext.BaseDirectory, "DnnImageModels", "ResNet18Onnx", "ResNet18.onnx");

    /// <summary>&lt;app base&gt;/DnnImageModels/ResNetPrepOnnx/ResNetPreprocess.onnx.</summary>
    public static string DefaultPreprocessPath => Path.Combine(AppContext.BaseDirectory, "DnnImageModels", "ResNetPrepOnnx", "ResNetPreprocess.onnx");

    /// <summary>
    /// The mean image [1,3,224,224] (BGR) that ResNetPreprocess.onnx subtracts: the graph maps RGB planes x to
    /// BGR(x) - mean, so on a zero image it returns -mean.
    /// </summary>
    public static Tensor ReadMeanImage(string preprocessPath)
    {
        if (!File.Exists(preprocessPath))
            throw new FileNotFoundException(
                $"{MetricName}: preprocessing graph '{preprocessPath}' not found (it ships with Microsoft.ML.DnnImageFeaturizer.ResNet18 " +
                "next to ResNet18.onnx, under DnnImageModels/ResNetPrepOnnx/).", preprocessPath);
        using var session = new InferenceSession(preprocessPath);
        var inputName = session.InputMetadata.Keys.Single();
        var zerosIn = new float[3 * InputSize * InputSize];
        using var value = OrtValue.CreateTensorValueFromMemory(zerosIn, [1, 3, InputSize, InputSize]);
        using var runOptions = new RunOptions();
        using var results = session.Run(runOptions, [inputName], [value], session.OutputNames);
        var negMean = results[0].GetTensorDataAsSpan<float>().ToArray();
        if (negMean.Length != zerosIn.Length)
            throw new InvalidDataException($"{MetricName}: '{preprocessPath}' returned {negMean.Length} values, expected {zerosIn.Length}.");
        for (var i = 0; i < negMean.Length; i++) negMean[i] = -negMean[i];
        return tensor(negMean, [1, 3, InputSize, InputSize]);
    }

    public string ModelPath { get; }
    public int Threads { get; }
    /// <summary>True when ONNX Runtime runs the network (image by image); false: natively batched in TorchSharp.</summary>
    public bool UsesOnnxRuntime { get; }

    /// <inheritdoc/>
    public string Name => MetricName;

    /// <inheritdoc/>
    public int Dimension => 512;

    /// <summary>
    /// The model input for images [N,C,H,W] in [-1,1]: [N,3,224,224] float32, BGR planes in 0-255 minus the mean image.
    /// </summary>
    public Tensor Preprocess(Tensor images)
    {
        using var scope = NewDisposeScope();
        var rgb = EvaluationImages.ToRgbFloat32(images, MetricName);
        var pixels = rgb.Plus(1).Times(127.5);   // [-1,1] -> [0,255]
        var resized = rgb.shape[2] == InputSize && rgb.shape[3] == InputSize
            ? pixels
            : F.interpolate(pixels, [InputSize, InputSize], mode: InterpolationMode.Bilinear, align_corners: false);
        var bgr = resized.flip(1);   // RGB -> BGR planes (ResNetPreprocess.onnx: Split R,G,B -> Concat B,G,R)
        return (bgr - _meanImageBgr).contiguous().MoveToOuterDisposeScope();
    }

    /// <inheritdoc/>
    public Tensor ExtractFeatures(Tensor images)
    {
        if (_native is not null) return ExtractNatively(images);
        using var input = Preprocess(images);
        var n = (int)input.shape[0];
        var all = input.data<float>().ToArray();
        var result = new float[n * 512];
        var per = _input.Length;
        lock (_lock)   // one pinned input/output buffer pair per extractor
        {
            for (var i = 0; i < n; i++)
            {
                Array.Copy(all, (long)i * per, _input, 0, per);
                _session!.Run(_runOptions, [InputName], [_inputValue!], [OutputName], [_outputValue!]);
                Array.Copy(_output, 0, result, (long)i * 512, 512);
            }
        }
        return tensor(result, [n, 512]);
    }

    // Chunks of NativeChunk images, preprocessed and run at this extractor's thread count (restored afterwards: the
    // count is per calling thread, and evaluation may run on a thread that trains too).
    private Tensor ExtractNatively(Tensor images)
    {
        lock (_lock)
        {
            int previous = torch.get_num_threads();
            torch.set_num_threads(Threads);
            try
            {
                using var scope = NewDisposeScope();
                var parts = new List<Tensor>();
                long n = images.shape[0];
                for (long start = 0; start < n; start += NativeChunk)
                {
                    using var chunkScope = NewDisposeScope();
                    var input = Preprocess(images.narrow(0, start, Math.Min(NativeChunk, n - start)));
                    parts.Add(_native!.Forward(input).reshape(-1, 512).MoveToOuterDisposeScope());
                }
                var all = parts.Count == 1 ? parts[0] : cat(parts, 0);
                return all.contiguous().MoveToOuterDisposeScope();
            }
            finally { torch.set_num_threads(previous); }
        }
    }

    public void Dispose()
    {
        _meanImageBgr.Dispose();
        _native?.Dispose();
        _inputValue?.Dispose();
        _outputValue?.Dispose();
        _session?.Dispose();
        _options?.Dispose();
        _runOptions.Dispose();
    }
}
