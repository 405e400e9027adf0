using Parameter = TorchSharp.Modules.Parameter;
using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Compute.Networks;

/// <summary>
/// EDM's group normalisation: groups = min(numGroups, C / minChannelsPerGroup).
/// Own <c>weight</c> (ones) and <c>bias</c> (zeros) parameters with the functional op, because
/// TorchSharp 0.107's nn.GroupNorm leaves its affine parameters uninitialised.
/// </summary>
public sealed class GroupNorm : nn.Module<Tensor, Tensor>
{
    public int NumChannels { get; }
    public int NumGroups { get; }
    public double Eps { get; }
    public Parameter Weight { get; }
    public Parameter Bias { get; }

    public GroupNorm(int numChannels, int numGroups = 32, int minChannelsPerGroup = 4, double eps = 1e-5) : base(nameof(GroupNorm))
    {
        NumChannels = numChannels;
        NumGroups = Math.Min(numGroups, numChannels / minChannelsPerGroup);
        if (NumGroups < 1)
            throw new ArgumentException($"GroupNorm over {numChannels} channels gives {NumGroups} groups (min {minChannelsPerGroup} channels per group); use at least {minChannelsPerGroup} channels.");
        Eps = eps;
        Weight = new Parameter(ones(numChannels, device: ModuleDevice.Current));
        Bias = new Parameter(zeros(numChannels, device: ModuleDevice.Current));
        register_parameter("weight", Weight);
        register_parameter("bias", Bias);
    }

    public override Tensor forward(Tensor x)
    {
        // EDM's use_fp16 (mixed precision): weight and bias in the input's dtype; in float32 no cast, no copy.
        if (x.dtype == Weight.dtype) return nn.functional.group_norm(x, NumGroups, Weight, Bias, Eps);
        using var w = Weight.to(x.dtype);
        using var b = Bias.to(x.dtype);
        return nn.functional.group_norm(x, NumGroups, w, b, Eps);
    }
}
