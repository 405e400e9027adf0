using static TorchSharp.torch;

namespace Ect.Compute.Networks;

/// <summary>EDM's <c>init_mode</c> choices (training/networks.py, <c>weight_init</c>).</summary>
public enum InitMode { XavierUniform, XavierNormal, KaimingUniform, KaimingNormal }

/// <summary>EDM's per-layer init arguments: <c>dict(init_mode=..., init_weight=..., init_bias=...)</c>.</summary>
public sealed record LayerInit(InitMode Mode = InitMode.KaimingNormal, double Weight = 1.0, double Bias = 0.0)
{
    /// <summary>SongUNet's <c>init</c>: xavier_uniform.</summary>
    public static LayerInit Default { get; } = new(InitMode.XavierUniform);
    /// <summary>SongUNet's <c>init_zero</c>: xavier_uniform scaled by 1e-5 (near-zero, not exactly zero).</summary>
    public static LayerInit Zero { get; } = new(InitMode.XavierUniform, 1e-5);
    /// <summary>SongUNet's <c>init_attn</c>: xavier_uniform scaled by sqrt(0.2).</summary>
    public static LayerInit Attention { get; } = new(InitMode.XavierUniform, Math.Sqrt(0.2));
}

/// <summary>EDM's unified <c>weight_init(shape, mode, fan_in, fan_out)</c>; draws from the global torch RNG.</summary>
public static class WeightInit
{
    public static Tensor Create(long[] shape, InitMode mode, long fanIn, long fanOut)
    {
        return mode switch
        {
            InitMode.XavierUniform => rand(shape, device: ModuleDevice.Current).Times(2).Minus(1).Times(Math.Sqrt(6.0 / (fanIn + fanOut))),
            InitMode.XavierNormal => randn(shape, device: ModuleDevice.Current).Times(Math.Sqrt(2.0 / (fanIn + fanOut))),
            InitMode.KaimingUniform => rand(shape, device: ModuleDevice.Current).Times(2).Minus(1).Times(Math.Sqrt(3.0 / fanIn)),
            InitMode.KaimingNormal => randn(shape, device: ModuleDevice.Current).Times(Math.Sqrt(1.0 / fanIn)),
            _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, "Invalid init mode"),
        };
    }
}
