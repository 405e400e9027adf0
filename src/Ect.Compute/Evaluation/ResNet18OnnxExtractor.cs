using System.Runtime.InteropServices;
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
/// at 1 in the file. By default it is given a symbolic batch axis in memory at load (<see cref="OnnxBatchAxis"/>) and ONNX
/// Runtime runs chunks of <see cref="DefaultOnnxChunk"/> images per call; <c>onnxChunk: 1</c> runs the shipped model image
/// by image as before. Each image's features are the same bits either way (ResNet18OnnxExtractorTests: chunks of 16
/// and 5 vs image by image, max difference 0, the same FD in all three: 1708.579004 before the grey fold below, 1708.578614
/// with it). With <c>nativeNetwork</c> it runs natively
/// batched in TorchSharp instead (<see cref="OnnxTorchNetwork"/>: the model's own graph and weights, chunks of
/// <see cref="NativeChunk"/> images, torch threads = the extractor's threads); the two agree to 1e-4 relative in
/// features and in the Fréchet distance. Measured 2026-12-01 on this project's 2-core AMD EPYC host (bench fd-resnet18,
/// 28x28 images, machine loaded, CPU time per image incl. preprocessing): ONNX Runtime ~39 ms; native with oneDNN ~91 ms
/// (oneDNN reorders activations and weights to its blocked layout around every convolution: 138 + 57 reorders for 66
/// convolutions per chunk), native with oneDNN off ~51 ms. So ONNX Runtime stays the default. Measured 2026-12-02
/// (`Ect.Bench fd-resnet18 --compare 1,16,32`, alternating, machine heavily loaded, load average 14-18 on 2 cores, so
/// wall img/s are not meaningful): CPU per image 35.2 / 34.3 / 32.6 ms (chunks 1 / 16 / 32), img/s ratio 16:1 median
/// 1.16; chunks amortise ONNX Runtime's per-call and per-operator overhead and give the intra-op threads whole
/// images' worth of work per operator. Deterministic for a fixed thread count (and, natively, chunk size). From 2
/// threads the chunks of a batch are shared by two one-thread sessions (<see cref="Lanes"/>, <see cref="DefaultLanes"/>),
/// the same bits per image as one two-thread session.
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

    /// <summary>Images per ONNX Runtime call by default (the model given a batch axis, <see cref="OnnxBatchAxis"/>).
    /// See the class remarks for the measurement that chose it.</summary>
    public const int DefaultOnnxChunk = 16;

    readonly OnnxTorchNetwork? _native;
    readonly Lane[] _lanes = [];      // ONNX Runtime sessions; more than one: each runs its share of the chunks at once
    readonly object _lock = new();

    /// <summary>One ONNX Runtime session with its own output buffer (a lane runs one chunk at a time).</summary>
    sealed class Lane : IDisposable
    {
        public required SessionOptions Options;
        public required InferenceSession Session;
        public InferenceSession? GreySession;   // made at the first grey batch (OnnxGreyInput), when FoldsGreyInput
        public required float[] Output;         // OnnxChunk x 512
        public readonly RunOptions RunOptions = new();
        public void Dispose() { Session.Dispose(); GreySession?.Dispose(); RunOptions.Dispose(); Options.Dispose(); }
    }

    /// <param name="intraOpThreads">ONNX Runtime intra-op threads (the machine has 2 cores; 2 is the measured default).</param>
    /// <param name="modelPath">ResNet18.onnx; null: <see cref="DefaultModelPath"/> in the build output.</param>
    /// <param name="preprocessPath">ResNetPreprocess.onnx; null: <see cref="DefaultPreprocessPath"/>.</param>
    /// <param name="allowSpinning">Let ONNX Runtime's intra-op threads spin while idle (off by default, see below).</param>
    /// <param name="nativeNetwork">Run the network natively batched in TorchSharp instead of ONNX Runtime.</param>
    /// <param name="onnxChunk">Images per ONNX Runtime call: 1 runs the shipped model (batch fixed at 1) image by image;
    /// more runs the model given a batch axis in memory (<see cref="OnnxBatchAxis"/>) on chunks of that many images.</param>
    /// <param name="optimization">ONNX Runtime graph optimization level (ORT_ENABLE_ALL includes the NCHWc layout
    /// transformer that turns convolutions into MLAS's blocked direct convolutions).</param>
    /// <param name="lanes">ONNX Runtime sessions that run different chunks at the same time, the intra-op threads shared
    /// among them (2 threads in 2 lanes: two one-thread sessions); 1: one session with all the threads; null:
    /// <see cref="DefaultLanes"/>.</param>
    public ResNet18OnnxExtractor(int intraOpThreads = 2, string? modelPath = null, string? preprocessPath = null, bool allowSpinning = false,
        bool nativeNetwork = false, int onnxChunk = DefaultOnnxChunk, GraphOptimizationLevel optimization = GraphOptimizationLevel.ORT_ENABLE_ALL,
        bool foldGreyInput = true, int? lanes = null)
    {
        if (intraOpThreads < 1) throw new ArgumentOutOfRangeException(nameof(intraOpThreads), intraOpThreads, "Threads must be at least 1.");
        if (lanes is { } l && (l < 1 || l > intraOpThreads))
            throw new ArgumentOutOfRangeException(nameof(lanes), lanes, $"{MetricName}: lanes must be 1 to the thread count ({intraOpThreads}).");
        if (onnxChunk is < 1 or > 1024)
            throw new ArgumentOutOfRangeException(nameof(onnxChunk), onnxChunk, $"{MetricName}: images per ONNX Runtime call must be 1 to 1024.");
        ModelPath = modelPath ?? DefaultModelPath;
        if (!File.Exists(ModelPath))
            throw new FileNotFoundException(
                $"{MetricName}: model file '{ModelPath}' not found. It ships with the NuGet package " +
                "Microsoft.ML.DnnImageFeaturizer.ResNet18 (0.23.1), whose build props copy it to <output>/DnnImageModels/ResNet18Onnx/; " +
                "reference that package from the program's project, or pass the path of ResNet18.onnx.", ModelPath);
        Threads = intraOpThreads;
        UsesOnnxRuntime = !nativeNetwork;
        FoldsGreyInput = foldGreyInput && !nativeNetwork;
        OnnxChunk = nativeNetwork ? 0 : onnxChunk;
        Lanes = nativeNetwork ? 1 : lanes ?? DefaultLanes(intraOpThreads);
        _meanImageBgr = ReadMeanImage(preprocessPath ?? DefaultPreprocessPath).DetachFromDisposeScope();
        if (nativeNetwork)
        {
            _native = new OnnxTorchNetwork(OnnxGraph.Load(ModelPath), InputName, OutputName, ModelPath);
            return;
        }
        var model = OnnxChunk == 1 ? File.ReadAllBytes(ModelPath) : OnnxBatchAxis.Rewrite(File.ReadAllBytes(ModelPath), InputName, OutputName, ModelPath);
        _lanes = new Lane[Lanes];
        for (var i = 0; i < Lanes; i++)
        {
            // The threads shared out: lane i gets threads / lanes, the first threads % lanes lanes one more.
            var options = new SessionOptions
            {
                IntraOpNumThreads = intraOpThreads / Lanes + (i < intraOpThreads % Lanes ? 1 : 0),
                InterOpNumThreads = 1,
                ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
                GraphOptimizationLevel = optimization,
            };
            // Spinning intra-op threads busy-wait between ops; they then compete with TorchSharp's threads (generation runs
            // between extraction batches in the same process) and with other processes. Measured on the shared 2-core
            // machine under load: 70 ms CPU per image without spinning vs 100 ms with.
            if (!allowSpinning)
                options.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
            _lanes[i] = new Lane { Options = options, Session = new InferenceSession(model, options), Output = new float[OnnxChunk * 512] };
        }
        var session = _lanes[0].Session;
        if (!session.InputMetadata.ContainsKey(InputName) || !session.OutputMetadata.ContainsKey(OutputName))
            throw new InvalidDataException(
                $"{MetricName}: '{ModelPath}' does not have input '{InputName}' and output '{OutputName}' " +
                $"(inputs: {string.Join(", ", session.InputMetadata.Keys)}; outputs: {string.Join(", ", session.OutputMetadata.Keys)}).");
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
    /// <summary>True when ONNX Runtime runs the network; false: natively batched in TorchSharp.</summary>
    public bool UsesOnnxRuntime { get; }

    /// <summary>
    /// Grey images run through the model with their three identical planes folded into the first convolution
    /// (<see cref="OnnxGreyInput"/>: one plane in, conv1 at a third of its multiply-adds; features equal to the
    /// three-plane model's to float rounding, checked to 1e-4 relative in features and FD by ResNet18OnnxExtractorTests).
    /// ONNX Runtime only; on by default. Measured 2026-12-02 on the quiet 2-core machine, two readings that disagree (this
    /// VM's speed drifts by up to ~1.7x for minutes): `ect eval` of 10,000 2-step samples with cached reference statistics
    /// took 174.2 s wall and 328 CPU-s folded, 188.5 s and 362 CPU-s unfolded (one run each, minutes apart); the
    /// extraction bench alternating both in one process (`Ect.Bench fd-resnet18 --compare 16,16:planes --rounds 3
    /// --images 512`) had the folded model at 25.7 ms CPU per image against 24.9 unfolded. A likely cost of the fold:
    /// the Add of the mean image's map sits between Conv and BatchNormalization, where ONNX Runtime would fuse them;
    /// adding the map scaled by gamma / sqrt(var + eps) after the BatchNormalization instead is the next thing to try.
    /// </summary>
    public bool FoldsGreyInput { get; }

    /// <summary>Images per ONNX Runtime call (1: the shipped model image by image); 0 when the network runs natively.</summary>
    public int OnnxChunk { get; }

    /// <summary>ONNX Runtime sessions running chunks at the same time (constructor's <c>lanes</c>).</summary>
    public int Lanes { get; }

    /// <summary>Two lanes from 2 threads up, else one. Measured (session 18, Zen 3 VM, `Ect.Bench fd-resnet18 --compare
    /// 16x1,16x2`, 2 threads, three runs of 3 rounds): two one-thread sessions 52.0-55.0 ms CPU per image in every round
    /// against 53.1-59.0 for one two-thread session, img/s x1.00-1.13 (`ect eval` of 10,000 samples, quiet: 328 against
    /// 346 s): a one-thread session has no intra-op
    /// hand-offs (each operator's work split and joined 2 ways) and keeps its activations in one core's cache. Each lane
    /// holds its own session (weights and activation arena): `ect eval`'s peak RSS grew 0.2-0.6 GB. Two is what was
    /// measured (docs/evaluation.md).</summary>
    public static int DefaultLanes(int intraOpThreads) => intraOpThreads >= 2 ? 2 : 1;

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
        var x = EvaluationImages.ToFloating(images, MetricName, ScalarType.Float32);
        var pixels = x.Plus(1).Times(127.5);   // [-1,1] -> [0,255]
        var resized = x.shape[2] == InputSize && x.shape[3] == InputSize
            ? pixels
            : F.interpolate(pixels, [InputSize, InputSize], mode: InterpolationMode.Bilinear, align_corners: false);
        // RGB -> BGR planes (ResNetPreprocess.onnx: Split R,G,B -> Concat B,G,R). A grey image is resized once and
        // broadcast to the three planes: the resize works plane by plane, so this gives the bits of resizing three equal
        // planes, at a third of the cost (measured: preprocessing was ~29% of the CPU time per 28x28 image).
        var bgr = x.shape[1] == 1 ? resized.expand(-1, 3, -1, -1) : resized.flip(1);
        return (bgr - _meanImageBgr).contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>Grey images [N,1,H,W] in [-1,1] as the folded model's input: [N,1,224,224] in 0-255 (no mean image: it is in the model).</summary>
    public Tensor ResizedPixels(Tensor images)
    {
        using var scope = NewDisposeScope();
        var x = EvaluationImages.ToFloating(images, MetricName, ScalarType.Float32);
        var pixels = x.Plus(1).Times(127.5);
        var resized = x.shape[2] == InputSize && x.shape[3] == InputSize
            ? pixels
            : F.interpolate(pixels, [InputSize, InputSize], mode: InterpolationMode.Bilinear, align_corners: false);
        return resized.contiguous().MoveToOuterDisposeScope();
    }

    private InferenceSession GreySession(Lane lane)
    {
        if (lane.GreySession is not null) return lane.GreySession;
        var folded = OnnxGreyInput.Rewrite(File.ReadAllBytes(ModelPath), InputName, _meanImageBgr, ModelPath);
        lane.GreySession = new InferenceSession(OnnxChunk == 1 ? folded : OnnxBatchAxis.Rewrite(folded, InputName, OutputName, ModelPath), lane.Options);
        return lane.GreySession;
    }

    /// <summary>The address of a float32 CPU tensor's first element: its storage's data plus its offset. TorchSharp 0.107
    /// keeps Storage.data_ptr protected; this is the exported LibTorchSharp function it calls.</summary>
    static IntPtr DataPointer(Tensor t) => THSStorage_data_ptr(t.Handle) + (nint)(t.storage_offset() * sizeof(float));

    [DllImport("LibTorchSharp")]
    private static extern IntPtr THSStorage_data_ptr(IntPtr tensor);

    /// <inheritdoc/>
    public Tensor ExtractFeatures(Tensor images)
    {
        if (_native is not null) return ExtractNatively(images);
        EvaluationImages.ToFloating(images, MetricName, ScalarType.Float32).Dispose();   // refuse bad input before any work
        long n = images.shape[0];
        var result = new float[n * 512];
        bool grey = FoldsGreyInput && images.shape[1] == 1;
        int chunks = (int)((n + OnnxChunk - 1) / OnnxChunk);
        lock (_lock)   // one pinned output buffer per lane
        {
            if (Lanes == 1 || chunks == 1)
            {
                for (var c = 0; c < chunks; c++) RunChunk(_lanes[0], images, c, grey, result, preprocessed: null);
            }
            else
            {
                // The lanes' threads run ONNX Runtime only: the whole batch is preprocessed here first (libtorch ops on
                // the caller's thread, whose OpenMP thread count is the caller's; 100 grey images are 20 MB), and each
                // lane takes the next chunk not yet taken. Each chunk's features are the same bits whichever lane runs it.
                using var scope = NewDisposeScope();
                var input = grey ? ResizedPixels(images) : Preprocess(images);
                if (grey) foreach (var lane in _lanes) GreySession(lane);   // made here, not by the lanes at once
                var lanes = new Thread[Lanes - 1];
                Exception? failure = null;
                int next = -1;
                void RunLane(int l)
                {
                    try { for (int c; (c = Interlocked.Increment(ref next)) < chunks && failure is null;) RunChunk(_lanes[l], images, c, grey, result, input); }
                    catch (Exception e) { Interlocked.CompareExchange(ref failure, e, null); }
                }
                for (var l = 1; l < Lanes; l++)
                {
                    var lane = l;
                    lanes[l - 1] = new Thread(() => RunLane(lane)) { IsBackground = true, Name = $"ect-onnx-lane{lane}" };
                    lanes[l - 1].Start();
                }
                RunLane(0);
                foreach (var t in lanes) t.Join();
                if (failure is not null) throw new InvalidOperationException($"{MetricName}: an ONNX Runtime lane failed: {failure.Message}", failure);
            }
        }
        return tensor(result, [n, 512]);
    }

    /// <summary>Chunk <paramref name="c"/> of <paramref name="images"/> through <paramref name="lane"/>'s session, its
    /// features into <paramref name="result"/>; preprocessed here unless the whole batch already is.</summary>
    private void RunChunk(Lane lane, Tensor images, int c, bool grey, float[] result, Tensor? preprocessed)
    {
        long n = images.shape[0], start = (long)c * OnnxChunk;
        int count = (int)Math.Min(OnnxChunk, n - start);
        int planes = grey ? 1 : 3;
        var per = planes * InputSize * InputSize;
        var session = grey ? GreySession(lane) : lane.Session;
        // One lane: chunk by chunk, preprocessing included (the resized input of a whole colour batch, 64 images: 38 MB,
        // need not exist at once). Several lanes: a view of the batch the caller preprocessed.
        using var scope = NewDisposeScope();
        // ONNX Runtime reads the preprocessed chunk where libtorch wrote it (contiguous float32, alive until this
        // scope ends): no copy into a managed array (before: Tensor.bytes made a fresh 3.2 MB array per chunk,
        // copied again into the pinned input; large-object-heap churn and page faults).
        var input = preprocessed is not null
            ? preprocessed.narrow(0, start, count)
            : grey ? ResizedPixels(images.narrow(0, start, count)) : Preprocess(images.narrow(0, start, count));
        if (!input.is_contiguous() || input.dtype != ScalarType.Float32 || input.numel() != (long)count * per)
            throw new InvalidOperationException($"{MetricName}: preprocessing gave [{string.Join(",", input.shape)}] {input.dtype}, not a contiguous float32 [{count},{planes},{InputSize},{InputSize}].");
        long[] inputShape = [count, planes, InputSize, InputSize], outputShape = [count, 512, 1, 1];
        using var inputValue = OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float,
            inputShape, DataPointer(input), (long)count * per * sizeof(float));
        using var outputValue = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, lane.Output.AsMemory(0, count * 512), outputShape);
        session.Run(lane.RunOptions, [InputName], [inputValue], [OutputName], [outputValue]);
        Array.Copy(lane.Output, 0, result, start * 512, count * 512);
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
        foreach (var lane in _lanes) lane.Dispose();
    }
}
