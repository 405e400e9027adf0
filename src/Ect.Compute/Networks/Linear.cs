using Parameter = TorchSharp.Modules.Parameter;
using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Compute.Networks;

/// <summary>EDM's fully-connected layer: parameters <c>weight</c> [out,in] and optional <c>bias</c> [out].</summary>
public sealed class Linear : nn.Module<Tensor, Tensor>
{
    public int InFeatures { get; }
    public int OutFeatures { get; }
    public Parameter Weight { get; }
    public Parameter? Bias { get; }

    public Linear(int inFeatures, int outFeatures, bool bias = true, LayerInit? init = null) : base(nameof(Linear))
    {
        init ??= new LayerInit();
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        using (no_grad())
        {
            using var w = WeightInit.Create([outFeatures, inFeatures], init.Mode, inFeatures, outFeatures);
            Weight = new Parameter(w.Times(init.Weight));
            register_parameter("weight", Weight);
            if (bias)
            {
                using var b = WeightInit.Create([outFeatures], init.Mode, inFeatures, outFeatures);
                Bias = new Parameter(b.Times(init.Bias));
                register_parameter("bias", Bias);
            }
        }
    }

    public override Tensor forward(Tensor x)
    {
        // EDM's use_fp16 (mixed precision): the weights in the input's dtype; in float32 no cast, no copy.
        using var wCast = Weight.dtype != x.dtype ? Weight.to(x.dtype) : null;
        using var bCast = Bias is { } b0 && b0.dtype != x.dtype ? b0.to(x.dtype) : null;
        var y = x.matmul((wCast ?? Weight).t());
        return Bias is null ? y : y.PlusInPlace(bCast ?? Bias);
    }
}
