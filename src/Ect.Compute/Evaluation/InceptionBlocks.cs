using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Ect.Compute.Evaluation;

// The blocks of pytorch-fid's FID Inception-v3 (torchvision's Inception3 blocks plus pytorch-fid's FIDInceptionA/C/E_1/E_2
// replacements). Submodule names and registration order are torchvision's, so state-dict keys match pytorch-fid's
// `pt_inception-2015-12-05-6726825d.pth` exactly (e.g. `Mixed_5b.branch5x5_1.conv.weight`).
// Each block opens its own dispose scope so that the branch intermediates are freed when the block returns.

/// <summary>torchvision BasicConv2d: conv (no bias) -> BatchNorm2d(eps 1e-3, eval: running statistics) -> ReLU.</summary>
public sealed class BasicConv2d : nn.Module<Tensor, Tensor>
{
    readonly Conv2d conv;
    readonly BatchNorm2d bn;

    public BasicConv2d(string name, long inChannels, long outChannels, (long, long) kernel, (long, long)? stride = null, (long, long)? padding = null)
        : base(name)
    {
        conv = nn.Conv2d(inChannels, outChannels, kernel, stride: stride ?? (1, 1), padding: padding ?? (0, 0), bias: false);
        bn = nn.BatchNorm2d(outChannels, eps: 0.001);
        register_module("conv", conv);
        register_module("bn", bn);
    }

    public BasicConv2d(string name, long inChannels, long outChannels, long kernel, long stride = 1, long padding = 0)
        : this(name, inChannels, outChannels, (kernel, kernel), (stride, stride), (padding, padding)) { }

    public override Tensor forward(Tensor x)
    {
        using var c = conv.call(x);
        using var b = bn.call(c);
        return F.relu(b);
    }
}

/// <summary>Pooling helpers with pytorch-fid's exact settings.</summary>
static class InceptionPool
{
    /// <summary>avg_pool2d(3, stride 1, padding 1, count_include_pad=False): divide by the non-padded pixels (4/6/9).</summary>
    public static Tensor AvgExcludePad(Tensor x) =>
        F.avg_pool2d(x, [3L, 3L], [1L, 1L], [1L, 1L], ceil_mode: false, count_include_pad: false);

    /// <summary>max_pool2d(3, stride 2), no padding (Mixed_6a, Mixed_7a, maxpool1/2).</summary>
    public static Tensor MaxStride2(Tensor x) => F.max_pool2d(x, [3L, 3L], [2L, 2L]);

    /// <summary>max_pool2d(3, stride 1, padding 1): FIDInceptionE_2's pool branch (a bug in the TF graph that FID keeps).</summary>
    public static Tensor MaxStride1Pad1(Tensor x) => F.max_pool2d(x, [3L, 3L], [1L, 1L], [1L, 1L]);
}

/// <summary>FIDInceptionA (Mixed_5b/5c/5d): [1x1 64, 5x5 64, 3x3dbl 96, pool pool_features], avg pool excludes padding.</summary>
public sealed class FidInceptionA : nn.Module<Tensor, Tensor>
{
    readonly BasicConv2d branch1x1, branch5x5_1, branch5x5_2, branch3x3dbl_1, branch3x3dbl_2, branch3x3dbl_3, branch_pool;

    public FidInceptionA(string name, long inChannels, long poolFeatures) : base(name)
    {
        branch1x1 = Reg(new BasicConv2d("branch1x1", inChannels, 64, 1));
        branch5x5_1 = Reg(new BasicConv2d("branch5x5_1", inChannels, 48, 1));
        branch5x5_2 = Reg(new BasicConv2d("branch5x5_2", 48, 64, 5, padding: 2));
        branch3x3dbl_1 = Reg(new BasicConv2d("branch3x3dbl_1", inChannels, 64, 1));
        branch3x3dbl_2 = Reg(new BasicConv2d("branch3x3dbl_2", 64, 96, 3, padding: 1));
        branch3x3dbl_3 = Reg(new BasicConv2d("branch3x3dbl_3", 96, 96, 3, padding: 1));
        branch_pool = Reg(new BasicConv2d("branch_pool", inChannels, poolFeatures, 1));
    }

    BasicConv2d Reg(BasicConv2d m) { register_module(m.GetName(), m); return m; }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var b1 = branch1x1.call(x);
        var b5 = branch5x5_2.call(branch5x5_1.call(x));
        var b3 = branch3x3dbl_3.call(branch3x3dbl_2.call(branch3x3dbl_1.call(x)));
        var bp = branch_pool.call(InceptionPool.AvgExcludePad(x));
        return cat([b1, b5, b3, bp], 1).MoveToOuterDisposeScope();
    }
}

/// <summary>torchvision InceptionB (Mixed_6a): [3x3 s2 384, 3x3dbl 96, max pool s2].</summary>
public sealed class InceptionB : nn.Module<Tensor, Tensor>
{
    readonly BasicConv2d branch3x3, branch3x3dbl_1, branch3x3dbl_2, branch3x3dbl_3;

    public InceptionB(string name, long inChannels) : base(name)
    {
        branch3x3 = Reg(new BasicConv2d("branch3x3", inChannels, 384, 3, stride: 2));
        branch3x3dbl_1 = Reg(new BasicConv2d("branch3x3dbl_1", inChannels, 64, 1));
        branch3x3dbl_2 = Reg(new BasicConv2d("branch3x3dbl_2", 64, 96, 3, padding: 1));
        branch3x3dbl_3 = Reg(new BasicConv2d("branch3x3dbl_3", 96, 96, 3, stride: 2));
    }

    BasicConv2d Reg(BasicConv2d m) { register_module(m.GetName(), m); return m; }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var b3 = branch3x3.call(x);
        var bd = branch3x3dbl_3.call(branch3x3dbl_2.call(branch3x3dbl_1.call(x)));
        var bp = InceptionPool.MaxStride2(x);
        return cat([b3, bd, bp], 1).MoveToOuterDisposeScope();
    }
}

/// <summary>FIDInceptionC (Mixed_6b..6e): [1x1 192, 7x7 192, 7x7dbl 192, pool 192], avg pool excludes padding.</summary>
public sealed class FidInceptionC : nn.Module<Tensor, Tensor>
{
    readonly BasicConv2d branch1x1, branch7x7_1, branch7x7_2, branch7x7_3,
        branch7x7dbl_1, branch7x7dbl_2, branch7x7dbl_3, branch7x7dbl_4, branch7x7dbl_5, branch_pool;

    public FidInceptionC(string name, long inChannels, long c7) : base(name)
    {
        branch1x1 = Reg(new BasicConv2d("branch1x1", inChannels, 192, 1));
        branch7x7_1 = Reg(new BasicConv2d("branch7x7_1", inChannels, c7, 1));
        branch7x7_2 = Reg(new BasicConv2d("branch7x7_2", c7, c7, (1, 7), padding: (0, 3)));
        branch7x7_3 = Reg(new BasicConv2d("branch7x7_3", c7, 192, (7, 1), padding: (3, 0)));
        branch7x7dbl_1 = Reg(new BasicConv2d("branch7x7dbl_1", inChannels, c7, 1));
        branch7x7dbl_2 = Reg(new BasicConv2d("branch7x7dbl_2", c7, c7, (7, 1), padding: (3, 0)));
        branch7x7dbl_3 = Reg(new BasicConv2d("branch7x7dbl_3", c7, c7, (1, 7), padding: (0, 3)));
        branch7x7dbl_4 = Reg(new BasicConv2d("branch7x7dbl_4", c7, c7, (7, 1), padding: (3, 0)));
        branch7x7dbl_5 = Reg(new BasicConv2d("branch7x7dbl_5", c7, 192, (1, 7), padding: (0, 3)));
        branch_pool = Reg(new BasicConv2d("branch_pool", inChannels, 192, 1));
    }

    BasicConv2d Reg(BasicConv2d m) { register_module(m.GetName(), m); return m; }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var b1 = branch1x1.call(x);
        var b7 = branch7x7_3.call(branch7x7_2.call(branch7x7_1.call(x)));
        var bd = branch7x7dbl_5.call(branch7x7dbl_4.call(branch7x7dbl_3.call(branch7x7dbl_2.call(branch7x7dbl_1.call(x)))));
        var bp = branch_pool.call(InceptionPool.AvgExcludePad(x));
        return cat([b1, b7, bd, bp], 1).MoveToOuterDisposeScope();
    }
}

/// <summary>torchvision InceptionD (Mixed_7a): [3x3 s2 320, 7x7x3 s2 192, max pool s2].</summary>
public sealed class InceptionD : nn.Module<Tensor, Tensor>
{
    readonly BasicConv2d branch3x3_1, branch3x3_2, branch7x7x3_1, branch7x7x3_2, branch7x7x3_3, branch7x7x3_4;

    public InceptionD(string name, long inChannels) : base(name)
    {
        branch3x3_1 = Reg(new BasicConv2d("branch3x3_1", inChannels, 192, 1));
        branch3x3_2 = Reg(new BasicConv2d("branch3x3_2", 192, 320, 3, stride: 2));
        branch7x7x3_1 = Reg(new BasicConv2d("branch7x7x3_1", inChannels, 192, 1));
        branch7x7x3_2 = Reg(new BasicConv2d("branch7x7x3_2", 192, 192, (1, 7), padding: (0, 3)));
        branch7x7x3_3 = Reg(new BasicConv2d("branch7x7x3_3", 192, 192, (7, 1), padding: (3, 0)));
        branch7x7x3_4 = Reg(new BasicConv2d("branch7x7x3_4", 192, 192, 3, stride: 2));
    }

    BasicConv2d Reg(BasicConv2d m) { register_module(m.GetName(), m); return m; }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var b3 = branch3x3_2.call(branch3x3_1.call(x));
        var b7 = branch7x7x3_4.call(branch7x7x3_3.call(branch7x7x3_2.call(branch7x7x3_1.call(x))));
        var bp = InceptionPool.MaxStride2(x);
        return cat([b3, b7, bp], 1).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// FIDInceptionE_1 (Mixed_7b, avg pool excluding padding) and FIDInceptionE_2 (Mixed_7c, max pool stride 1):
/// [1x1 320, 3x3 = cat(1x3, 3x1) 768, 3x3dbl = cat(1x3, 3x1) 768, pool 192].
/// </summary>
public sealed class FidInceptionE : nn.Module<Tensor, Tensor>
{
    readonly BasicConv2d branch1x1, branch3x3_1, branch3x3_2a, branch3x3_2b,
        branch3x3dbl_1, branch3x3dbl_2, branch3x3dbl_3a, branch3x3dbl_3b, branch_pool;
    readonly bool maxPool;

    /// <param name="maxPool">false: FIDInceptionE_1 (avg pool, count_include_pad=False); true: FIDInceptionE_2 (max pool).</param>
    public FidInceptionE(string name, long inChannels, bool maxPool) : base(name)
    {
        this.maxPool = maxPool;
        branch1x1 = Reg(new BasicConv2d("branch1x1", inChannels, 320, 1));
        branch3x3_1 = Reg(new BasicConv2d("branch3x3_1", inChannels, 384, 1));
        branch3x3_2a = Reg(new BasicConv2d("branch3x3_2a", 384, 384, (1, 3), padding: (0, 1)));
        branch3x3_2b = Reg(new BasicConv2d("branch3x3_2b", 384, 384, (3, 1), padding: (1, 0)));
        branch3x3dbl_1 = Reg(new BasicConv2d("branch3x3dbl_1", inChannels, 448, 1));
        branch3x3dbl_2 = Reg(new BasicConv2d("branch3x3dbl_2", 448, 384, 3, padding: 1));
        branch3x3dbl_3a = Reg(new BasicConv2d("branch3x3dbl_3a", 384, 384, (1, 3), padding: (0, 1)));
        branch3x3dbl_3b = Reg(new BasicConv2d("branch3x3dbl_3b", 384, 384, (3, 1), padding: (1, 0)));
        branch_pool = Reg(new BasicConv2d("branch_pool", inChannels, 192, 1));
    }

    BasicConv2d Reg(BasicConv2d m) { register_module(m.GetName(), m); return m; }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var b1 = branch1x1.call(x);
        var t3 = branch3x3_1.call(x);
        var b3 = cat([branch3x3_2a.call(t3), branch3x3_2b.call(t3)], 1);
        var td = branch3x3dbl_2.call(branch3x3dbl_1.call(x));
        var bd = cat([branch3x3dbl_3a.call(td), branch3x3dbl_3b.call(td)], 1);
        var pooled = maxPool ? InceptionPool.MaxStride1Pad1(x) : InceptionPool.AvgExcludePad(x);
        var bp = branch_pool.call(pooled);
        return cat([b1, b3, bd, bp], 1).MoveToOuterDisposeScope();
    }
}
