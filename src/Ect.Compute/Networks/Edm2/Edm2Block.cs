using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;
using Parameter = TorchSharp.Modules.Parameter;

namespace Ect.Compute.Networks.Edm2;

/// <summary>Encoder or decoder flavour of an <see cref="Edm2Block"/> (where the skip projection and pixel norm sit).</summary>
public enum BlockFlavor { Enc, Dec }

/// <summary>
/// A test hook that replaces a block's <c>dropout(y)</c> by <c>y * noise</c>: given the block's name
/// (<c>enc.8x8_down</c>, ...) and y, it returns the noise (0 or 1/(1-p) per element, shaped like y), as the golden
/// data stores what ATen's dropout multiplies with. Null = the real dropout on the global torch RNG.
/// </summary>
public delegate Tensor DropoutNoise(string blockName, Tensor y);

/// <summary>
/// EDM2's magnitude-preserving U-Net block (networks_edm2.Block). Parameters in the official order:
/// <c>emb_gain</c> (scalar, init 0), <c>conv_res0</c>, <c>emb_linear</c>, <c>conv_res1</c>, <c>conv_skip</c> (when
/// in != out), <c>attn_qkv</c>, <c>attn_proj</c> (when it has heads). Heads = out // channels_per_head when attention
/// is asked, so 0 heads (no attention) when out &lt; channels_per_head. Forward: resample; enc: conv_skip, pixel norm;
/// y = conv_res0(mp_silu(x)); y = mp_silu(y (emb_linear(emb, emb_gain) + 1)); dropout (train mode, p &gt; 0);
/// y = conv_res1(y); dec: conv_skip; x = mp_sum(x, y, res_balance); attention with normalised q, k, v;
/// x = mp_sum(x, attn, attn_balance); clip to +-clip_act.
/// </summary>
public sealed class Edm2Block : nn.Module<Tensor, Tensor, Tensor>
{
    /// <summary>The block's path inside the U-Net (<c>enc.8x8_down</c>), used by taps and the dropout hook.</summary>
    public string Path { get; }
    public int InChannels { get; }
    public int OutChannels { get; }
    public BlockFlavor Flavor { get; }
    public ResampleMode ResampleMode { get; }
    public IReadOnlyList<int> ResampleFilter { get; }
    public int NumHeads { get; }
    public double Dropout { get; }
    public double ResBalance { get; }
    public double AttnBalance { get; }
    public double? ClipAct { get; }

    public Parameter EmbGain { get; }
    public MPConv ConvRes0 => conv_res0;
    public MPConv EmbLinear => emb_linear;
    public MPConv ConvRes1 => conv_res1;
    public MPConv? ConvSkip => conv_skip;
    public MPConv? AttnQkv => attn_qkv;
    public MPConv? AttnProj => attn_proj;

    // Field names are EDM2's module names, declared in its construction order: RegisterComponents registers
    // Module-typed fields by field name, which gives the state-dict keys conv_res0.weight, attn_qkv.weight, ...
    private readonly MPConv conv_res0;
    private readonly MPConv emb_linear;
    private readonly MPConv conv_res1;
    private readonly MPConv? conv_skip;
    private readonly MPConv? attn_qkv;
    private readonly MPConv? attn_proj;

    public Edm2Block(string path, int inChannels, int outChannels, int embChannels, BlockFlavor flavor,
        ResampleMode resampleMode = ResampleMode.Keep, IReadOnlyList<int>? resampleFilter = null, bool attention = false,
        int channelsPerHead = 64, double dropout = 0, double resBalance = 0.3, double attnBalance = 0.3, double? clipAct = 256)
        : base(nameof(Edm2Block))
    {
        if (channelsPerHead <= 0) throw new ArgumentException($"{path}: channels_per_head must be positive, got {channelsPerHead}.");
        if (!(dropout >= 0 && dropout < 1)) throw new ArgumentException($"{path}: dropout must be in [0, 1), got {dropout}.");
        Path = path;
        InChannels = inChannels;
        OutChannels = outChannels;
        Flavor = flavor;
        ResampleMode = resampleMode;
        ResampleFilter = resampleFilter ?? [1, 1];
        NumHeads = attention ? outChannels / channelsPerHead : 0;
        Dropout = dropout;
        ResBalance = resBalance;
        AttnBalance = attnBalance;
        ClipAct = clipAct;

        // Construction and registration order = the official __init__, so parameters enumerate as in PyTorch.
        EmbGain = new Parameter(zeros([], device: ModuleDevice.Current));
        register_parameter("emb_gain", EmbGain);
        conv_res0 = new MPConv(flavor == BlockFlavor.Enc ? outChannels : inChannels, outChannels, [3, 3]);
        emb_linear = new MPConv(embChannels, outChannels, []);
        conv_res1 = new MPConv(outChannels, outChannels, [3, 3]);
        if (inChannels != outChannels)
        {
            conv_skip = new MPConv(inChannels, outChannels, [1, 1]);
        }
        if (NumHeads != 0)
        {
            attn_qkv = new MPConv(outChannels, outChannels * 3, [1, 1]);
            attn_proj = new MPConv(outChannels, outChannels, [1, 1]);
        }
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor emb) => Forward(x, emb, null, null);

    /// <summary>The block, reporting its sub-layers' outputs to <paramref name="sink"/> as <c>{Path}.conv_res0</c>, ...</summary>
    public Tensor Forward(Tensor x, Tensor emb, ActivationSink? sink, DropoutNoise? dropoutNoise)
    {
        using var scope = NewDisposeScope();

        // Main branch.
        x = Resample.Apply(x, ResampleMode, ResampleFilter);
        if (Flavor == BlockFlavor.Enc)
        {
            if (conv_skip is not null)
                x = Tap("conv_skip", conv_skip.forward(x));
            x = Mp.Normalize(x, [1]); // pixel norm
        }

        // Residual branch.
        var y = Tap("conv_res0", conv_res0.forward(Mp.Silu(x)));
        var c = Tap("emb_linear", emb_linear.Forward(emb, EmbGain)).Plus(1);
        y = Mp.Silu(y * c.unsqueeze(2).unsqueeze(3).to(y.dtype));
        if (training && Dropout != 0)
            y = dropoutNoise is null ? SharedDropout.Apply(y, Dropout, training: true) : y * dropoutNoise(Path, y);
        y = Tap("conv_res1", conv_res1.forward(y));

        // Connect the branches.
        if (Flavor == BlockFlavor.Dec && conv_skip is not null)
            x = Tap("conv_skip", conv_skip.forward(x));
        x = Mp.Sum(x, y, ResBalance);

        // Self-attention.
        if (NumHeads != 0)
        {
            var qkv = Tap("attn_qkv", attn_qkv!.forward(x));
            qkv = qkv.reshape(qkv.shape[0], NumHeads, -1, 3, qkv.shape[2] * qkv.shape[3]);
            var parts = Mp.Normalize(qkv, [2]).unbind(3); // pixel norm & split
            Tensor q = parts[0], k = parts[1], v = parts[2];
            var logits = einsum("nhcq,nhck->nhqk", q, k.Over(Math.Sqrt(q.shape[2])));
            var w = logits.softmax(3);
            var a = einsum("nhqk,nhck->nhcq", w, v);
            var proj = Tap("attn_proj", attn_proj!.forward(a.reshape(x.shape)));
            x = Mp.Sum(x, proj, AttnBalance);
        }

        // Clip activations.
        if (ClipAct is { } clip)
        {
            using var lo = (-clip).ToScalar();
            using var hi = clip.ToScalar();
            x = x.clamp_(lo, hi);
        }
        return x.MoveToOuterDisposeScope();

        Tensor Tap(string name, Tensor t)
        {
            sink?.Invoke($"{Path}.{name}", t);
            return t;
        }
    }
}
