using Akka.Configuration;

namespace Ect.Actors.Configuration;

/// <summary>
/// Settings of one evaluator, from `ect.evaluation.evaluators`. The positional part is common to every type (for
/// sample-grid, Count is the grid's image count); the init-only part is read by fd-resnet18 only.
/// </summary>
public sealed record EvaluatorSettings(string Type, IReadOnlyList<int> SamplingSteps, int Count, int Seed, double TMax, double MidT)
{
    /// <summary>fd-resnet18: the first K training images give the reference statistics (0 = all).</summary>
    public int ReferenceCount { get; init; } = 10000;
    /// <summary>fd-resnet18: images per Generate call and per reference batch.</summary>
    public int Batch { get; init; } = 100;
    /// <summary>fd-resnet18: reference statistics cache folder ("" = ~/.cache/ect/stats, shared with `ect eval`).</summary>
    public string CacheDir { get; init; } = "";
    /// <summary>fd-resnet18: threads of the feature extractor (ONNX Runtime intra-op) and of the statistics (TorchSharp).</summary>
    public int Threads { get; init; } = 1;
}

/// <summary>
/// ect.evaluation.*: how often the evaluators run (<see cref="Every"/> steps, 0 = only at the end), the TorchSharp threads
/// of their sampling (set on each evaluator's own thread) and the evaluators themselves. Validated once by
/// <see cref="RunSettings.From"/>: each wrong key of each evaluator is named.
/// </summary>
public sealed record EvaluationSettings(long Every, int Threads, IReadOnlyList<EvaluatorSettings> Evaluators)
{
    internal static EvaluationSettings Read(SettingsReader r, List<string> errors) => new(
        r.Long("ect.evaluation.every-steps", v => v >= 0, "must be >= 0 (0 = only at the end)"),
        r.Int("ect.evaluation.threads", v => v >= 1, "must be >= 1"),
        ReadEvaluators(r.Config, errors));

    /// <summary>Most consistency steps an evaluator samples with: 1 (t-max), 2 (t-max, mid-t), 3 to this many at EDM's
    /// Karras times (the times of `ect eval --steps N`; a recipe study compares 1, 2 and 4 steps in the run, issue 19).</summary>
    public const int MaxSamplingSteps = 8;

    /// <summary>Evaluator types and the keys each accepts (a key another type reads, or a typo, is refused).</summary>
    public static readonly IReadOnlyDictionary<string, string[]> EvaluatorKeys = new Dictionary<string, string[]>
    {
        ["sample-grid"] = ["type", "sampling-steps", "count", "seed", "t-max", "mid-t"],
        ["fd-resnet18"] = ["type", "sampling-steps", "count", "seed", "t-max", "mid-t", "reference-count", "batch", "cache-dir", "threads"],
    };

    private static IReadOnlyList<EvaluatorSettings> ReadEvaluators(Config c, List<string> errors)
    {
        var result = new List<EvaluatorSettings>();
        const string key = "ect.evaluation.evaluators";
        IList<Config> list;
        try { list = c.GetValue(key).GetArray().Select(v => { if (!v.IsObject()) throw new FormatException(); return new Config(new Akka.Configuration.Hocon.HoconRoot(v)); }).ToList(); }
        catch (Exception) { errors.Add($"{key}: must be a list of objects {{ type = ..., ... }}"); return result; }
        for (int i = 0; i < list.Count; i++)
        {
            var e = list[i];
            var at = $"{key}[{i}]";
            var type = e.GetString("type", "");
            if (!EvaluatorKeys.TryGetValue(type, out var known))
            {
                errors.Add($"{at}.type = \"{type}\": unknown evaluator (known: {string.Join(", ", EvaluatorKeys.Keys)})");
                continue;
            }
            var ev = type == "fd-resnet18" ? ReadFdResNet18(e, at, known, errors) : ReadSampleGrid(e, at, errors);
            if (ev != null) result.Add(ev);
        }
        return result;
    }

    private static EvaluatorSettings? ReadSampleGrid(Config e, string at, List<string> errors)
    {
        try
        {
            var steps = e.HasPath("sampling-steps") ? e.GetIntList("sampling-steps").ToList() : [1, 2];
            var ev = new EvaluatorSettings("sample-grid", steps, e.GetInt("count", 64), e.GetInt("seed", 1234),
                e.GetDouble("t-max", 80.0), e.GetDouble("mid-t", 0.821));
            if (ev.Count <= 0) errors.Add($"{at}.count = {ev.Count}: must be > 0");
            if (steps.Count == 0 || steps.Any(n => n is < 1 or > MaxSamplingSteps)) errors.Add($"{at}.sampling-steps: each must be 1 to {MaxSamplingSteps}");
            return ev;
        }
        catch (Exception ex) { errors.Add($"{at}: {ex.Message}"); return null; }
    }

    /// <summary>fd-resnet18: every key is read and checked on its own, so that one message names each wrong key.</summary>
    private static EvaluatorSettings? ReadFdResNet18(Config e, string at, string[] known, List<string> errors)
    {
        var before = errors.Count;
        foreach (var k in EctConfiguration.LeafKeys(e))
            if (!known.Contains(k))
                errors.Add($"{at}.{k}: unknown key for type fd-resnet18 (known: {string.Join(", ", known.Skip(1))})");

        T Get<T>(string k, T fallback, Func<string, T> read, Func<T, bool> ok, string rule)
        {
            if (!e.HasPath(k)) return fallback;
            try
            {
                var v = read(k);
                if (!ok(v)) errors.Add($"{at}.{k} = {SettingsReader.Show(e, k)}: {rule}");
                return v;
            }
            catch (Exception) { errors.Add($"{at}.{k} = {SettingsReader.Show(e, k)}: not a valid value ({rule})"); return fallback; }
        }

        var steps = Get<IReadOnlyList<int>>("sampling-steps", [1, 2], k => e.GetIntList(k).ToList(),
            v => v.Count > 0 && v.All(n => n is >= 1 and <= MaxSamplingSteps) && v.Distinct().Count() == v.Count,
            $"a non-empty list of distinct values 1 to {MaxSamplingSteps} (3 and more: EDM's Karras times, as `ect eval --steps N`)");
        var count = Get("count", 2000, k => e.GetInt(k), v => v >= 2, "must be >= 2 (a Frechet distance needs 2 images)");
        var seed = Get("seed", 1234, k => e.GetInt(k), _ => true, "an integer");
        var tMax = Get("t-max", 80.0, k => e.GetDouble(k), v => v > 0 && double.IsFinite(v), "must be > 0");
        var midT = Get("mid-t", 0.821, k => e.GetDouble(k), v => v > 0 && double.IsFinite(v), "must be > 0");
        if (tMax > 0 && midT > 0 && midT >= tMax) errors.Add($"{at}.mid-t = {SettingsReader.Show(e, "mid-t")}: must be < t-max ({tMax})");
        var refCount = Get("reference-count", 10000, k => e.GetInt(k), v => v == 0 || v >= 2, "must be 0 (all images) or >= 2");
        var batch = Get("batch", 100, k => e.GetInt(k), v => v >= 1, "must be >= 1");
        var cacheDir = Get("cache-dir", "", k => e.GetString(k) ?? "", _ => true, "a folder");
        var threads = Get("threads", 1, k => e.GetInt(k), v => v >= 1, "must be >= 1");
        if (errors.Count > before) return null;
        return new EvaluatorSettings("fd-resnet18", steps, count, seed, tMax, midT)
        {
            ReferenceCount = refCount, Batch = batch, CacheDir = cacheDir, Threads = threads,
        };
    }

}
