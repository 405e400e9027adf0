using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Ect.Compute.Evaluation;

/// <summary>Intermediate activations of <see cref="InceptionV3Fid.ForwardWithTaps"/> (all float32, caller disposes).</summary>
public sealed class InceptionTaps : IDisposable
{
    /// <summary>Network input after resize to 299 and mapping to [-1,1]: [N,3,299,299].</summary>
    public required Tensor Input { get; init; }
    /// <summary>After Conv2d_1a/2a/2b + maxpool1 (pytorch-fid block 0): [N,64,73,73].</summary>
    public required Tensor MaxPool1 { get; init; }
    /// <summary>After Conv2d_3b/4a + maxpool2 (block 1): [N,192,35,35].</summary>
    public required Tensor MaxPool2 { get; init; }
    /// <summary>After Mixed_5d: [N,288,35,35].</summary>
    public required Tensor Mixed5d { get; init; }
    /// <summary>After Mixed_6e (block 2): [N,768,17,17].</summary>
    public required Tensor Mixed6e { get; init; }
    /// <summary>After Mixed_7c, before the global average pool: [N,2048,8,8].</summary>
    public required Tensor Mixed7c { get; init; }
    /// <summary>FID features (block 3, global average pool): [N,2048].</summary>
    public required Tensor Features { get; init; }

    public void Dispose()
    {
        foreach (var t in new[] { Input, MaxPool1, MaxPool2, Mixed5d, Mixed6e, Mixed7c, Features }) t.Dispose();
    }
}

/// <summary>
/// pytorch-fid's FID Inception-v3 (the TF "2015-12-05" graph ported to torchvision's Inception3 with 1008 classes and
/// the FIDInceptionA/C/E_1/E_2 blocks) in TorchSharp, eval mode, float32. <see cref="ExtractFeatures"/> returns the
/// 2048-d pool features of pytorch-fid's <c>InceptionV3([3], resize_input=True, normalize_input=True)</c>.
/// <para>
/// The constructor builds the network with uninitialised-by-contract weights: load real weights with
/// <see cref="LoadWeights"/> (pytorch-fid's <c>pt_inception-2015-12-05-6726825d.pth</c> or a safetensors copy;
/// see docs/evaluation.md for where to get them) before computing a FID.
/// State-dict keys and order are exactly pytorch-fid's (566 entries including fc and the num_batches_tracked buffers).
/// Threads: uses TorchSharp's global intra-op thread count (torch.set_num_threads).
/// </para>
/// </summary>
public sealed class InceptionV3Fid : nn.Module<Tensor, Tensor>, IFeatureExtractor
{
    /// <summary>Input resolution of the network.</summary>
    public const int InputSize = 299;

    /// <summary>URL of pytorch-fid's weights (FID_WEIGHTS_URL in pytorch-fid 0.3.0).</summary>
    public const string WeightsUrl =
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth";

    readonly BasicConv2d Conv2d_1a_3x3, Conv2d_2a_3x3, Conv2d_2b_3x3, Conv2d_3b_1x1, Conv2d_4a_3x3;
    readonly FidInceptionA Mixed_5b, Mixed_5c, Mixed_5d;
    readonly InceptionB Mixed_6a;
    readonly FidInceptionC Mixed_6b, Mixed_6c, Mixed_6d, Mixed_6e;
    readonly InceptionD Mixed_7a;
    readonly FidInceptionE Mixed_7b, Mixed_7c;
    readonly Linear fc;

    public InceptionV3Fid() : base("InceptionV3Fid")
    {
        // Registration order = torchvision Inception3.__init__ order (maxpool/avgpool/dropout hold no state).
        Conv2d_1a_3x3 = Reg(new BasicConv2d("Conv2d_1a_3x3", 3, 32, 3, stride: 2));
        Conv2d_2a_3x3 = Reg(new BasicConv2d("Conv2d_2a_3x3", 32, 32, 3));
        Conv2d_2b_3x3 = Reg(new BasicConv2d("Conv2d_2b_3x3", 32, 64, 3, padding: 1));
        Conv2d_3b_1x1 = Reg(new BasicConv2d("Conv2d_3b_1x1", 64, 80, 1));
        Conv2d_4a_3x3 = Reg(new BasicConv2d("Conv2d_4a_3x3", 80, 192, 3));
        Mixed_5b = Reg(new FidInceptionA("Mixed_5b", 192, 32));
        Mixed_5c = Reg(new FidInceptionA("Mixed_5c", 256, 64));
        Mixed_5d = Reg(new FidInceptionA("Mixed_5d", 288, 64));
        Mixed_6a = Reg(new InceptionB("Mixed_6a", 288));
        Mixed_6b = Reg(new FidInceptionC("Mixed_6b", 768, 128));
        Mixed_6c = Reg(new FidInceptionC("Mixed_6c", 768, 160));
        Mixed_6d = Reg(new FidInceptionC("Mixed_6d", 768, 160));
        Mixed_6e = Reg(new FidInceptionC("Mixed_6e", 768, 192));
        Mixed_7a = Reg(new InceptionD("Mixed_7a", 768));
        Mixed_7b = Reg(new FidInceptionE("Mixed_7b", 1280, maxPool: false));
        Mixed_7c = Reg(new FidInceptionE("Mixed_7c", 2048, maxPool: true));
        // fc (1008 classes) is part of the checkpoint's state dict; FID features do not use it.
        fc = nn.Linear(2048, 1008);
        register_module("fc", fc);
        eval();
        foreach (var p in parameters()) p.requires_grad = false;
    }

    T Reg<T>(T m) where T : nn.Module { register_module(m.GetName(), m); return m; }

    /// <inheritdoc/>
    public string Name => "FID-InceptionV3";

    /// <inheritdoc/>
    public int Dimension => 2048;

    /// <summary>Features [N,2048] of images [N,C,H,W] in [-1,1] (see <see cref="IFeatureExtractor.ExtractFeatures"/>).</summary>
    public override Tensor forward(Tensor images) => ExtractFeatures(images);

    /// <inheritdoc/>
    public Tensor ExtractFeatures(Tensor images) => Run(images, keepTaps: false).features;

    /// <summary>The features and the intermediate activations that the golden data checks.</summary>
    public InceptionTaps ForwardWithTaps(Tensor images)
    {
        var (features, taps) = Run(images, keepTaps: true);
        return new InceptionTaps
        {
            Input = taps!["input"], MaxPool1 = taps["maxpool1"], MaxPool2 = taps["maxpool2"],
            Mixed5d = taps["Mixed_5d"], Mixed6e = taps["Mixed_6e"], Mixed7c = taps["Mixed_7c"], Features = features,
        };
    }

    /// <summary>
    /// The network input: pytorch-fid resizes [0,1] images to 299x299 (bilinear, align_corners=False) and maps them to
    /// 2x-1. Our images are in [-1,1]: map to [0,1] with (x+1)/2 first so that the arithmetic (and its rounding) is
    /// pytorch-fid's, then resize, then 2x-1.
    /// </summary>
    public static Tensor PrepareInput(Tensor images, ScalarType dtype = ScalarType.Float32)
    {
        using var scope = NewDisposeScope();
        var rgb = EvaluationImages.ToRgb(images, "FID-InceptionV3", dtype);
        var x01 = rgb.Plus(1).div(ScalarConstants.Two);
        var resized = F.interpolate(x01, [InputSize, InputSize], mode: InterpolationMode.Bilinear, align_corners: false);
        return resized.mul(ScalarConstants.Two).sub(ScalarConstants.One).MoveToOuterDisposeScope();
    }

    (Tensor features, Dictionary<string, Tensor>? taps) Run(Tensor images, bool keepTaps)
    {
        using var noGrad = no_grad();
        var taps = keepTaps ? new Dictionary<string, Tensor>() : null;
        // Runs in the dtype of the weights: float32 normally; float64 after net.to(float64) (a replica for checks).
        var x = PrepareInput(images, fc.weight!.dtype);
        if (taps != null) taps["input"] = x;

        // Each stage replaces x; the previous x is freed unless it is kept as a tap.
        Tensor Step(Tensor cur, Func<Tensor, Tensor> f, string? tap = null)
        {
            var next = f(cur);
            if (taps == null || !taps.Values.Any(t => ReferenceEquals(t, cur))) cur.Dispose();
            if (taps != null && tap != null) taps[tap] = next;
            return next;
        }

        x = Step(x, Conv2d_1a_3x3.call);
        x = Step(x, Conv2d_2a_3x3.call);
        x = Step(x, Conv2d_2b_3x3.call);
        x = Step(x, InceptionPool.MaxStride2, "maxpool1");
        x = Step(x, Conv2d_3b_1x1.call);
        x = Step(x, Conv2d_4a_3x3.call);
        x = Step(x, InceptionPool.MaxStride2, "maxpool2");
        x = Step(x, Mixed_5b.call);
        x = Step(x, Mixed_5c.call);
        x = Step(x, Mixed_5d.call, "Mixed_5d");
        x = Step(x, Mixed_6a.call);
        x = Step(x, Mixed_6b.call);
        x = Step(x, Mixed_6c.call);
        x = Step(x, Mixed_6d.call);
        x = Step(x, Mixed_6e.call, "Mixed_6e");
        x = Step(x, Mixed_7a.call);
        x = Step(x, Mixed_7b.call);
        x = Step(x, Mixed_7c.call, "Mixed_7c");
        // AdaptiveAvgPool2d(1) then flatten: [N,2048,8,8] -> [N,2048].
        var features = Step(x, t => F.adaptive_avg_pool2d(t, [1L, 1L]).flatten(1));
        return (features, taps);
    }

    /// <summary>
    /// Loads weights from a PyTorch state-dict file (<c>.pth</c>/<c>.pt</c>, zip format, via TorchSharp.PyBridge) or a
    /// <c>.safetensors</c> file, with a strict key and shape check (see <see cref="StrictStateDictLoader"/>).
    /// </summary>
    public void LoadWeights(string path) => StrictStateDictLoader.Load(this, path, "FID Inception-v3");

    /// <summary>Loads weights from an in-memory state dict with the same strict check.</summary>
    public void LoadWeights(IReadOnlyDictionary<string, Tensor> stateDict, string source = "state dict")
        => StrictStateDictLoader.Apply(this, stateDict, source, "FID Inception-v3");
}
