using static TorchSharp.torch;

namespace Ect.Compute.Runtime;

/// <summary>
/// ect.run.mixed-precision: off (float32 everywhere), bf16 or fp16. What the official code's amp branch does
/// (--fp16 --enable_amp): the U-Net runs in the low dtype (EDM's use_fp16), float32 master weights, preconditioning
/// and loss in float32, and for fp16 a dynamic loss scaler (torch.cuda.amp.GradScaler). TorchSharp 0.107 exposes no
/// torch.autocast, so the casts are explicit, as EDM's own use_fp16 path is (SongUNetPrecond.Precision; Linear, Conv2d and
/// GroupNorm cast their weights to the input's dtype, the attention weights are computed in float32).
/// Deviation: only the trained network runs in the low dtype; the EMA's sampling and evaluation stay float32.
/// fp16 is refused on the CPU (<see cref="CheckDevice"/>); bf16 runs on the CPU through
/// Networks.ChannelPaddedConvolution, which works around oneDNN's wrong bf16 kernels there.
/// </summary>
public sealed record MixedPrecision(string Name, ScalarType? ComputeType)
{
    public const string Key = "ect.run.mixed-precision";
    public static readonly MixedPrecision Off = new("off", null);
    public static readonly MixedPrecision Bf16 = new("bf16", ScalarType.BFloat16);
    public static readonly MixedPrecision Fp16 = new("fp16", ScalarType.Float16);

    public bool Enabled => ComputeType is not null;

    /// <summary>fp16 needs the loss scaler (its range underflows small gradients); bf16 has float32's range.</summary>
    public bool NeedsLossScaler => ComputeType == ScalarType.Float16;

    public static MixedPrecision Parse(string value) => value switch
    {
        "off" => Off,
        "bf16" => Bf16,
        "fp16" => Fp16,
        _ => throw new ArgumentException($"{Key} = \"{value}\": must be off, bf16 or fp16."),
    };

    /// <summary>
    /// Refuses what this version cannot run soundly: fp16 on the CPU. fp16 trains with the amp branch's dynamic loss
    /// scaler (Optim.DynamicLossScaler) on CUDA, where the amp branch runs it; libtorch's float16 CPU convolutions were
    /// never checked against float64 on this project's CPUs (they have no AVX512-FP16, and oneDNN's bf16 kernels were
    /// wrong there until padded: Bf16ConvolutionProbeTests), so the CPU takes bf16 or off. bf16 runs on both.
    /// </summary>
    public void CheckDevice(ComputeDevice device)
    {
        if (ComputeType == ScalarType.Float16 && device.IsCpu)
            throw new ArgumentException($"{Key} = fp16 on the CPU: not supported (libtorch's float16 CPU convolutions are unchecked on these CPUs; ect.run.device resolved to {device}); use bf16 on the CPU, or fp16 with a CUDA device (ect.run.device = cuda).");
    }

    public override string ToString() => Name;
}
