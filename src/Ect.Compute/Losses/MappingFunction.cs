using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Compute.Losses;

/// <summary>The two ECT mappings t -> r (ECMLoss.t_to_r_const / t_to_r_sigmoid).</summary>
public enum MappingKind { Sigmoid, Const }

/// <summary>
/// ECT's mapping r = mapping(t, stage), clamped at r >= 0 (ect-method.md section 3.2):
/// const: r = t (1 - q^-(stage+1)); sigmoid: r = t (1 - q^-(stage+1) (1 + k sigmoid(-b t))).
/// The operation order follows the reference so float32 results agree bit for bit.
/// </summary>
public sealed class MappingFunction
{
    public MappingFunction(MappingKind kind = MappingKind.Sigmoid, double q = 2.0, double k = 8.0, double b = 1.0, int stage = 0)
    {
        if (!(q > 1)) throw new ArgumentOutOfRangeException(nameof(q), q, "The ECT mapping needs q > 1 (the gap t - r shrinks by q each stage).");
        if (stage < 0) throw new ArgumentOutOfRangeException(nameof(stage), stage, "stage must be >= 0.");
        Kind = kind; Q = q; K = k; B = b; Stage = stage;
    }

    public MappingKind Kind { get; }
    public double Q { get; }
    public double K { get; }
    public double B { get; }

    private int _stage;
    /// <summary>Current stage (set by the schedule: stage = floor(tick / double_ticks)).</summary>
    public int Stage
    {
        get => _stage;
        set => _stage = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "stage must be >= 0.");
    }

    /// <summary>1 / q^(stage+1), as the reference computes it in Python floats.</summary>
    public double Decay => 1.0 / Math.Pow(Q, Stage + 1);

    /// <summary>r/t for the const mapping (the reference's loss_fn.ratio).</summary>
    public double Ratio => 1.0 - Decay;

    /// <summary>r for each t (same shape and dtype as t).</summary>
    public Tensor TToR(Tensor t)
    {
        using var scope = NewDisposeScope();
        Tensor r;
        if (Kind == MappingKind.Const)
        {
            r = t.Times(1.0 - Decay);
        }
        else
        {
            var adj = sigmoid(t.Times(-B)).Times(K).Plus(1.0);
            var ratio = ScalarMath.Minus(1.0, adj.Times(Decay));
            r = t * ratio;
        }
        return clamp(r, min: ScalarConstants.ZeroDouble).MoveToOuterDisposeScope();
    }
}
