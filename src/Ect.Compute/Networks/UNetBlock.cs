using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Ect.Compute.Networks;

/// <summary>
/// EDM's unified U-Net block (DDPM++/NCSN++/ADM): GroupNorm-SiLU-Conv, embedding affine (additive or
/// adaptive scale/shift), dropout, zero-ish-init Conv, skip connection (1x1 projection or plain
/// resample), scaling by skipScale, optional self-attention. Submodule names as EDM:
/// norm0, conv0, affine, norm1, conv1, skip, norm2, qkv, proj.
/// </summary>
public sealed class UNetBlock : nn.Module<Tensor, Tensor, Tensor>
{
    public int InChannels { get; }
    public int OutChannels { get; }
    public int EmbChannels { get; }
    public int NumHeads { get; }
    public double Dropout { get; }
    public double SkipScale { get; }
    public bool AdaptiveScale { get; }

    // Field names are EDM's module names: TorchSharp registers Module-typed fields by field name
    // (RegisterComponents), which gives the state-dict keys norm0.weight, conv0.bias, ...
    // Declaration order = EDM's construction order, so parameters enumerate in PyTorch's state_dict order.
    private readonly GroupNorm norm0;
    private readonly Conv2d conv0;
    private readonly Linear affine;
    private readonly GroupNorm norm1;
    private readonly Conv2d conv1;
    private readonly Conv2d? skip;
    private readonly GroupNorm? norm2;
    private readonly Conv2d? qkv, proj;

    public UNetBlock(int inChannels, int outChannels, int embChannels, bool up = false, bool down = false,
        bool attention = false, int? numHeads = null, int channelsPerHead = 64, double dropout = 0,
        double skipScale = 1, double eps = 1e-5, IReadOnlyList<int>? resampleFilter = null,
        bool resampleProj = false, bool adaptiveScale = true,
        LayerInit? init = null, LayerInit? initZero = null, LayerInit? initAttn = null)
        : base(nameof(UNetBlock))
    {
        init ??= new LayerInit();
        initZero ??= new LayerInit(Weight: 0);
        resampleFilter ??= [1, 1];
        InChannels = inChannels;
        OutChannels = outChannels;
        EmbChannels = embChannels;
        NumHeads = !attention ? 0 : numHeads ?? outChannels / channelsPerHead;
        Dropout = dropout;
        SkipScale = skipScale;
        AdaptiveScale = adaptiveScale;

        // Construction order matches EDM so that the RNG draws happen in the same sequence.
        norm0 = new GroupNorm(inChannels, eps: eps);
        conv0 = new Conv2d(inChannels, outChannels, 3, up: up, down: down, resampleFilter: resampleFilter, init: init);
        affine = new Linear(embChannels, outChannels * (adaptiveScale ? 2 : 1), init: init);
        norm1 = new GroupNorm(outChannels, eps: eps);
        conv1 = new Conv2d(outChannels, outChannels, 3, init: initZero);

        if (outChannels != inChannels || up || down)
        {
            int kernel = resampleProj || outChannels != inChannels ? 1 : 0;
            skip = new Conv2d(inChannels, outChannels, kernel, up: up, down: down, resampleFilter: resampleFilter, init: init);
        }

        if (NumHeads > 0)
        {
            norm2 = new GroupNorm(outChannels, eps: eps);
            qkv = new Conv2d(outChannels, outChannels * 3, 1, init: initAttn ?? init);
            proj = new Conv2d(outChannels, outChannels, 1, init: initZero);
        }
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor emb)
    {
        var orig = x;
        using var h0 = F.silu(norm0.forward(x));
        var h = conv0.forward(h0);

        using var p = affine.forward(emb);
        using var parameters = p.unsqueeze(2).unsqueeze(3).to(h.dtype);
        if (AdaptiveScale)
        {
            var chunks = parameters.chunk(2, 1);
            using var scale = chunks[0];
            using var shift = chunks[1];
            using var n = norm1.forward(h);
            using var s1 = scale.Plus(1);
            using var a = addcmul(shift, n, s1, ScalarConstants.One);
            h.Dispose();
            h = F.silu(a);
        }
        else
        {
            using var added = h.Plus(parameters);
            using var n = norm1.forward(added);
            h.Dispose();
            h = F.silu(n);
        }

        using (var d = SharedDropout.Apply(h, Dropout, training))
        {
            h.Dispose();
            h = conv1.forward(d);
        }
        using (var skipped = skip is not null ? skip.forward(orig) : null)
        using (var sum = h.Plus(skipped ?? orig))
        {
            h.Dispose();
            h = sum.Times(SkipScale);
        }

        if (NumHeads > 0)
        {
            long n = h.shape[0], c = h.shape[1];
            using var normed = norm2!.forward(h);
            using var qkvOut = qkv!.forward(normed);
            using var qkvHeads = qkvOut.reshape(n * NumHeads, c / NumHeads, 3, -1);
            var parts = qkvHeads.unbind(2);
            using var q = parts[0];
            using var k = parts[1];
            using var v = parts[2];
            using var w = AttentionOp.Weights(q, k);
            using var a = einsum("nqk,nck->ncq", w, v);
            using var aShaped = a.reshape(h.shape);
            using var projected = proj!.forward(aShaped);
            using var withResidual = projected.Plus(h);
            h.Dispose();
            h = withResidual.Times(SkipScale);
        }
        return h;
    }
}
