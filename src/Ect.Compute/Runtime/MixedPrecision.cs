using static TorchSharp.torch;

namespace Ect.Compute.Runtime;

/// <summary>
/// ect.run.mixed-precision: off (float32 everywhere), bf16 or fp16. What the official code's amp branch does
/// (--fp16 --enable_amp): the U-Net runs in the low dtype (EDM's use_fp16), float32 master weights, preconditioning
/// and loss in float32, and for fp16 a dynamic loss scaler (torch.cuda.amp.GradScaler). TorchSharp 0.107 exposes no
/// torch.autocast, so the casts are explicit, as EDM's own use_fp16 path is.
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

    /// <summary>Refuses fp16 on the CPU (as EDM's use_fp16, which acts on CUDA only; libtorch's CPU half kernels are slow and partial).</summary>
    public void CheckDevice(ComputeDevice device)
    {
        if (ComputeType == ScalarType.Float16 && device.IsCpu)
            throw new ArgumentException($"{Key} = fp16 needs a CUDA device (ect.run.device resolved to {device}); use bf16 on the CPU, or off.");
    }

    public override string ToString() => Name;
}
