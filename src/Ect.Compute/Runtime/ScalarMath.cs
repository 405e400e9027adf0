using TorchSharp;
using static Ect.Compute.ScalarConstants;
using static TorchSharp.torch;

namespace Ect.Compute;

/// <summary>
/// Tensor arithmetic with numbers (and a + b) through Scalars we own, for the places where TorchSharp's operators would
/// make a temporary Scalar and leave it to the GC finalizer (docs/torchsharp-scalar-race.md): each number becomes a
/// Scalar that is disposed only after the native call has returned. Each method makes exactly the libtorch call the
/// operator it replaces makes (read from TorchSharp 0.107's IL), so results keep their bits: <c>a.Plus(b)</c> is
/// <c>a + b</c>, <c>x.Times(0.5)</c> is <c>x * 0.5</c>, <c>ScalarMath.Minus(1, x)</c> is <c>1 - x</c>.
/// A long and a double overload keep the number's type (an integer tensor times 2 stays an integer tensor).
/// </summary>
public static class ScalarMath
{
    /// <summary>a + b.</summary>
    public static Tensor Plus(this Tensor a, Tensor b) => a.add(b, One);

    /// <summary>a + v.</summary>
    public static Tensor Plus(this Tensor a, double v) { using var s = v.ToScalar(); return a.add(s, One); }

    /// <summary>a + v.</summary>
    public static Tensor Plus(this Tensor a, long v) { using var s = v.ToScalar(); return a.add(s, One); }

    /// <summary>a - v.</summary>
    public static Tensor Minus(this Tensor a, double v) { using var s = v.ToScalar(); return a.sub(s); }

    /// <summary>a - v.</summary>
    public static Tensor Minus(this Tensor a, long v) { using var s = v.ToScalar(); return a.sub(s); }

    /// <summary>v - a (TorchSharp: -a + v).</summary>
    public static Tensor Minus(double v, Tensor a) { using var s = v.ToScalar(); using var neg = a.negative(); return neg.add(s, One); }

    /// <summary>a * v.</summary>
    public static Tensor Times(this Tensor a, double v) { using var s = v.ToScalar(); return a.mul(s); }

    /// <summary>a * v.</summary>
    public static Tensor Times(this Tensor a, long v) { using var s = v.ToScalar(); return a.mul(s); }

    /// <summary>a / v.</summary>
    public static Tensor Over(this Tensor a, double v) { using var s = v.ToScalar(); return a.div(s); }

    /// <summary>a / v.</summary>
    public static Tensor Over(this Tensor a, long v) { using var s = v.ToScalar(); return a.div(s); }

    /// <summary>v / a (TorchSharp: a.reciprocal() * v).</summary>
    public static Tensor Over(double v, Tensor a) { using var s = v.ToScalar(); using var r = a.reciprocal(); return r.mul(s); }

    /// <summary>a ** 2, as <c>a.square()</c> computes it.</summary>
    public static Tensor Squared(this Tensor a) => a.pow(Two);

    /// <summary>a += b in place.</summary>
    public static Tensor PlusInPlace(this Tensor a, Tensor b) => a.add_(b, One);
}
