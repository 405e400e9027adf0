using System.Globalization;
using Akka.Configuration;

namespace Ect.Actors.Configuration;

/// <summary>
/// The sane range of every live key (hocon/default.conf documents each): a value outside it is refused, at start and
/// from `ect ctl set`, with the range in the message. The bounds keep a run trainable (a learning rate of 1e308 makes
/// the loss non-finite at once), and the step and stage arithmetic far from overflow.
/// </summary>
public static class LiveKeyRanges
{
    /// <summary>An inclusive range; Text is how messages and default.conf write it.</summary>
    public sealed record Range(double Min, double Max, string Text)
    {
        public bool Contains(double v) => v >= Min && v <= Max; // false for NaN
    }

    /// <summary>The highest ECT stage: `ect ctl stage N` takes 0..MaxStage, and the schedule's stage stops there.</summary>
    /// <remarks>
    /// The gap t - r is t q^-(stage+1): by stage 1000 it is below float32 resolution for every q >= 1.1, so a larger
    /// stage changes nothing the network sees; the cap keeps q^(stage+1) and the int stage counter finite.
    /// </remarks>
    public const int MaxStage = 1000;

    public static readonly IReadOnlyDictionary<string, Range> Ranges = new Dictionary<string, Range>
    {
        ["ect.run.max-steps"] = new(0, 1e12, "0 (no cap) to 1000000000000"),
        ["ect.pretrain.lr"] = new(1e-8, 0.1, "1e-8 to 0.1"),
        ["ect.tuning.lr"] = new(1e-8, 0.1, "1e-8 to 0.1"),
        ["ect.tuning.double-ticks"] = new(0.01, 1e6, "0.01 to 1000000"),
        ["ect.checkpoint.every-steps"] = new(1, 1e9, "1 to 1000000000"),
        ["ect.checkpoint.keep-last"] = new(1, 1000, "1 to 1000"),
        ["ect.evaluation.every-steps"] = new(0, 1e9, "0 (only at the end) to 1000000000"),
    };

    /// <summary>One message per live key of <paramref name="c"/> outside its range (the key, the value, the range).</summary>
    public static IEnumerable<string> Violations(Config c)
    {
        foreach (var (key, range) in Ranges)
        {
            if (!c.HasPath(key)) continue;
            double v;
            try { v = c.GetDouble(key); }
            catch (Exception) { continue; } // not a number: RunSettings reports it with the key's own rule
            if (!range.Contains(v))
                yield return $"{key} = {c.GetString(key)}: outside its range {range.Text}";
        }
    }

    /// <summary>Null when <paramref name="stage"/> is a stage `ect ctl stage` may set, else why not.</summary>
    public static string? CheckStage(long stage) =>
        stage is >= 0 and <= MaxStage ? null
            : $"stage {stage.ToString(CultureInfo.InvariantCulture)}: outside its range 0 to {MaxStage} (ECT stages; by stage {MaxStage} the gap t - r is below float32 resolution)";
}
