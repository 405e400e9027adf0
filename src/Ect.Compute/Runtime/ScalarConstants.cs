using TorchSharp;

namespace Ect.Compute;

/// <summary>
/// Scalars for the constants our tensor arithmetic passes to libtorch, created once and never disposed: alive for the
/// whole process, so no garbage collection can free one while libtorch reads it, and read-only, so every thread may
/// share them. Why not the numbers themselves: TorchSharp 0.107 turns a number into a temporary Scalar (x * 0.5,
/// x.clamp(0), and the alpha = 1 of a + b) that it leaves to the GC finalizer, which may free it during the native call
/// when another thread triggers a collection: wrong values, NaN, "Unknown scalar type" (issue 17,
/// docs/torchsharp-scalar-race.md; TorchScalarRulesTests rejects such calls). Each constant has the number type the
/// implicit conversion it replaces had (an int 1 is TorchSharp's own alpha), so results keep their bits and dtypes.
/// Values computed at run time use <c>using var s = value.ToScalar();</c> or <see cref="ScalarMath"/>.
/// </summary>
public static class ScalarConstants
{
    /// <summary>int 0.</summary>
    public static readonly Scalar Zero = 0.ToScalar();
    /// <summary>int -1.</summary>
    public static readonly Scalar MinusOne = (-1).ToScalar();
    /// <summary>int 1: the alpha of a + b (<c>a.add(b, One)</c> is what TorchSharp's <c>a + b</c> computes).</summary>
    public static readonly Scalar One = 1.ToScalar();
    /// <summary>int 2: <c>t.pow(Two)</c> is <c>t.square()</c>.</summary>
    public static readonly Scalar Two = 2.ToScalar();
    /// <summary>double 0.5.</summary>
    public static readonly Scalar Half = 0.5.ToScalar();
    /// <summary>double -1.0.</summary>
    public static readonly Scalar MinusOneDouble = (-1.0).ToScalar();
    /// <summary>double 0.0.</summary>
    public static readonly Scalar ZeroDouble = 0.0.ToScalar();
}
