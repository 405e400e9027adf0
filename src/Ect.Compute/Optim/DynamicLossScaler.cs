using System.Globalization;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ect.Compute.Optim;

/// <summary>
/// The official amp branch's gradient scaler (locuslab/ect amp, training/ct_training_loop.py: torch.cuda.amp.GradScaler()
/// with its defaults) for ect.run.mixed-precision = fp16: the loss is multiplied by <see cref="Scale"/> before backward so
/// that small fp16 gradients do not underflow; the float32 gradients are divided by it again; a step whose gradients hold
/// inf or NaN is skipped (no optimizer step, no EMA update) and the scale multiplied by <see cref="BackoffFactor"/>; after
/// <see cref="GrowthInterval"/> finite steps in a row the scale is multiplied by <see cref="GrowthFactor"/>.
/// Scale and factors are powers of two, so scaling and unscaling are exact in float32.
/// <para>
/// Deviation: the official loop runs nan_to_num(grad, nan=0, posinf=1e5, neginf=-1e5) on the SCALED gradients before
/// scaler.step, so its scaler never sees an inf and never skips or backs off ("NOTE: This should be further tested for
/// AMP"); here the scaler checks the gradients first (GradScaler's own semantics), and the sanitising runs after it.
/// The official loss is scaler.scale(loss.mean()); ours is loss.sum() * scale / batch_size, the same for one round.
/// </para>
/// </summary>
public sealed class DynamicLossScaler
{
    /// <summary>GradScaler's defaults: init_scale 2^16, growth_factor 2, backoff_factor 0.5, growth_interval 2000.</summary>
    public const double DefaultInitScale = 65536.0;
    public const double DefaultGrowthFactor = 2.0;
    public const double DefaultBackoffFactor = 0.5;
    public const int DefaultGrowthInterval = 2000;

    public DynamicLossScaler(double initScale = DefaultInitScale, double growthFactor = DefaultGrowthFactor,
        double backoffFactor = DefaultBackoffFactor, int growthInterval = DefaultGrowthInterval)
    {
        if (!(initScale > 0) || double.IsInfinity(initScale)) throw new ArgumentOutOfRangeException(nameof(initScale), initScale, "the initial loss scale must be finite and > 0.");
        if (!(growthFactor > 1)) throw new ArgumentOutOfRangeException(nameof(growthFactor), growthFactor, "the growth factor must be > 1.");
        if (!(backoffFactor > 0 && backoffFactor < 1)) throw new ArgumentOutOfRangeException(nameof(backoffFactor), backoffFactor, "the backoff factor must be in (0, 1).");
        if (growthInterval < 1) throw new ArgumentOutOfRangeException(nameof(growthInterval), growthInterval, "the growth interval must be >= 1.");
        Scale = initScale;
        GrowthFactor = growthFactor;
        BackoffFactor = backoffFactor;
        GrowthInterval = growthInterval;
    }

    public double Scale { get; private set; }
    public double GrowthFactor { get; }
    public double BackoffFactor { get; }
    public int GrowthInterval { get; }
    /// <summary>Finite steps in a row since the last growth or backoff (GradScaler's _growth_tracker).</summary>
    public int GrowthTracker { get; private set; }
    /// <summary>Steps skipped because their gradients held inf/NaN, over the whole run (saved with the state).</summary>
    public long SkippedSteps { get; private set; }

    /// <summary>
    /// Divides every gradient by <see cref="Scale"/> in place (GradScaler.unscale_) and returns whether all of them are
    /// finite afterwards (false: the step must be skipped).
    /// </summary>
    public bool UnscaleAndCheck(IEnumerable<Parameter> parameters)
    {
        using var scope = NewDisposeScope();
        double inv = 1.0 / Scale;
        bool finite = true;
        foreach (var p in parameters)
        {
            var g = p.grad;
            if (g is null) continue;
            using var invScalar = inv.ToScalar();
            g.mul_(invScalar);
            if (finite && !g.isfinite().all().item<bool>()) finite = false;
        }
        return finite;
    }

    /// <summary>GradScaler.update: back off after a skipped step, grow after <see cref="GrowthInterval"/> good ones.</summary>
    public void Update(bool skipped)
    {
        if (skipped)
        {
            Scale *= BackoffFactor;
            GrowthTracker = 0;
            SkippedSteps++;
            return;
        }
        if (++GrowthTracker >= GrowthInterval)
        {
            Scale *= GrowthFactor;
            GrowthTracker = 0;
        }
    }

    /// <summary>The state as one metadata string (TrainState's <c>ect.loss-scaler</c>): scale, growth tracker, skipped steps.</summary>
    public string Serialize() => string.Create(CultureInfo.InvariantCulture, $"{Scale:R};{GrowthTracker};{SkippedSteps}");

    /// <summary>Restores <see cref="Serialize"/>'s string; <paramref name="source"/> names the file in errors.</summary>
    public void Restore(string value, string source)
    {
        var parts = value.Split(';');
        if (parts.Length != 3
            || !double.TryParse(parts[0], NumberStyles.Float, CultureInfo.InvariantCulture, out var scale) || !(scale > 0) || double.IsInfinity(scale)
            || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var tracker) || tracker >= GrowthInterval
            || !long.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var skipped))
            throw new InvalidDataException($"'{source}': metadata ect.loss-scaler = '{value}' is not 'scale;growth-tracker;skipped-steps' " +
                                           $"(scale finite > 0, 0 <= tracker < {GrowthInterval}, skipped >= 0); the file is damaged: resume from another checkpoint.");
        Scale = scale;
        GrowthTracker = tracker;
        SkippedSteps = skipped;
    }
}
