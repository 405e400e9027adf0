using Akka.Configuration;
using Ect.Compute.Losses;
using Ect.Compute.Optim;

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
/// The typed, validated view of the `ect` configuration. Construction checks every value and throws a
/// ConfigurationException naming each wrong key, so that no work starts with a bad configuration.
/// </summary>
public sealed record RunSettings
{
    public required Config Config { get; init; }
    public required long Seed { get; init; }
    public required long MaxSteps { get; init; }
    public required string Engine { get; init; }
    public required int Threads { get; init; }
    public required string DataPath { get; init; }
    public required int BatchSize { get; init; }
    public required int Prefetch { get; init; }
    public required bool UseLabels { get; init; }
    public required string NetworkType { get; init; }
    /// <summary>ect.pretrain.p-mean/p-std and ect.tuning.* as typed values (TrainingSettings.cs); Engines.Torch builds from them.</summary>
    public PretrainSettings Pretrain { get; init; } = null!;
    public TuningSettings Tuning { get; init; } = null!;
    public required long PretrainSteps { get; init; }
    public required double PretrainLr { get; init; }
    public required long TuningSteps { get; init; }
    public required double TuningLr { get; init; }
    public required double KimgPerTick { get; init; }
    public required double DoubleTicks { get; init; }
    public required double EmaBeta { get; init; }
    public required long CheckpointEvery { get; init; }
    public required int KeepLast { get; init; }
    public required long MilestoneEvery { get; init; }
    public required int NanStreakLimit { get; init; }
    public required int MaxRollbacks { get; init; }
    public required long EvaluationEvery { get; init; }
    /// <summary>TorchSharp threads of the evaluators' sampling (set on each evaluator's own thread).</summary>
    public required int EvaluationThreads { get; init; }
    public required IReadOnlyList<EvaluatorSettings> Evaluators { get; init; }
    public required string DisplayMode { get; init; }
    public required double LogIntervalSeconds { get; init; }
    public required int SnapshotEvery { get; init; }
    /// <summary>Tries of a failed checkpoint write and the wait between them (ect.checkpoint.write-*).</summary>
    public Run.CheckpointWritePolicy CheckpointWrite { get; init; } = Run.CheckpointWritePolicy.Default;
    /// <summary>How long `ect train` waits after SIGTERM/SIGINT for the clean stop before it ends anyway (ect.run.stop-timeout-seconds).</summary>
    public double StopTimeoutSeconds { get; init; } = 60;

    public long TotalSteps => PretrainSteps + TuningSteps;

    /// <summary>
    /// The keys the user gave (--config files, --set, --steps), as opposed to defaults: on resume only an explicitly
    /// given ect.data.path replaces the journaled one (a plain `ect train` must not move a run back to the default
    /// data); a continued run compares only these with its recorded configuration (a finished run is lengthened only
    /// when ect.tuning.steps was asked for).
    /// </summary>
    public IReadOnlySet<string> ExplicitKeys { get; init; } = new HashSet<string>();

    /// <summary>Keys a running run accepts from `ect ctl set` (applied at a step boundary, journaled).</summary>
    public static readonly IReadOnlySet<string> LiveKeys = new HashSet<string>
    {
        "ect.run.max-steps", "ect.pretrain.lr", "ect.tuning.lr", "ect.tuning.double-ticks",
        "ect.checkpoint.every-steps", "ect.checkpoint.keep-last", "ect.evaluation.every-steps",
    };

    /// <summary>
    /// Checks a value for a live key: returns null when fine, else a message naming the key. Used by the
    /// coordinator before anything is applied (a refused change leaves the run untouched).
    /// </summary>
    public static string? CheckLiveChange(Config current, string key, string value)
    {
        if (!key.StartsWith("ect.", StringComparison.Ordinal)) key = "ect." + key;
        if (!LiveKeys.Contains(key))
            return current.HasPath(key)
                ? $"'{key}' cannot be changed on a running run (live keys: {string.Join(", ", LiveKeys.Order())})"
                : $"unknown configuration key '{key}'";
        try
        {
            var changed = EctConfiguration.ParseSet($"{key}={value}").WithFallback(current);
            From(changed, checkData: false);
            return null;
        }
        catch (ConfigurationException e) { return e.Message; }
    }

    public static RunSettings From(Config c, bool checkData = true)
    {
        var errors = new List<string>();

        T Get<T>(string key, Func<string, T> read, Func<T, bool> ok, string rule)
        {
            try
            {
                var v = read(key);
                if (!ok(v)) errors.Add($"{key} = {Show(c, key)}: {rule}");
                return v;
            }
            catch (Exception)
            {
                errors.Add($"{key} = {Show(c, key)}: not a valid value ({rule})");
                return default!;
            }
        }

        long L(string k, Func<long, bool> ok, string rule) => Get(k, x => c.GetLong(x), ok, rule);
        int I(string k, Func<int, bool> ok, string rule) => Get(k, x => c.GetInt(x), ok, rule);
        double D(string k, Func<double, bool> ok, string rule) => Get(k, x => c.GetDouble(x), ok, rule);
        string S(string k, Func<string, bool> ok, string rule) => Get(k, x => c.GetString(x) ?? "", ok, rule);

        var s = new RunSettings
        {
            Config = c,
            Seed = L("ect.run.seed", _ => true, "an integer"),
            MaxSteps = L("ect.run.max-steps", v => v >= 0, "must be >= 0 (0 = no cap)"),
            Engine = S("ect.run.engine", v => v is "torch" or "fake", "must be \"torch\" or \"fake\""),
            Threads = I("ect.run.threads", v => v >= 1, "must be >= 1"),
            DataPath = S("ect.data.path", v => v.Length > 0, "must name the dataset folder or file"),
            BatchSize = I("ect.data.batch-size", v => v > 0, "must be > 0"),
            Prefetch = I("ect.data.prefetch", v => v >= 1, "must be >= 1"),
            UseLabels = Get("ect.data.use-labels", x => c.GetBoolean(x), _ => true, "on or off"),
            NetworkType = S("ect.network.type", v => v is "ddpmpp" or "ncsnpp" or "edm2", "unknown network: use \"ddpmpp\", \"ncsnpp\" or \"edm2\""),
            PretrainSteps = L("ect.pretrain.steps", v => v >= 0, "must be >= 0"),
            PretrainLr = D("ect.pretrain.lr", v => v > 0 && double.IsFinite(v), "must be > 0"),
            TuningSteps = L("ect.tuning.steps", v => v >= 0, "must be >= 0"),
            TuningLr = D("ect.tuning.lr", v => v > 0 && double.IsFinite(v), "must be > 0"),
            KimgPerTick = D("ect.tuning.kimg-per-tick", v => v > 0, "must be > 0"),
            DoubleTicks = D("ect.tuning.double-ticks", v => v > 0, "must be > 0"),
            EmaBeta = D("ect.ema.beta", v => v is >= 0 and < 1, "must be in [0, 1)"),
            CheckpointEvery = L("ect.checkpoint.every-steps", v => v > 0, "must be > 0"),
            KeepLast = I("ect.checkpoint.keep-last", v => v >= 1, "must be >= 1"),
            MilestoneEvery = L("ect.checkpoint.milestone-every-steps", v => v >= 0, "must be >= 0 (0 = none)"),
            NanStreakLimit = I("ect.training.nan-streak-limit", v => v >= 1, "must be >= 1"),
            MaxRollbacks = I("ect.training.max-rollbacks", v => v >= 0, "must be >= 0"),
            EvaluationEvery = L("ect.evaluation.every-steps", v => v >= 0, "must be >= 0 (0 = only at the end)"),
            EvaluationThreads = I("ect.evaluation.threads", v => v >= 1, "must be >= 1"),
            Evaluators = ReadEvaluators(c, errors),
            DisplayMode = S("ect.display.mode", v => v is "auto" or "live" or "plain" or "off", "must be auto, live, plain or off"),
            LogIntervalSeconds = D("ect.display.log-interval-seconds", v => v > 0, "must be > 0"),
            SnapshotEvery = I("ect.persistence.snapshot-every-events", v => v >= 1, "must be >= 1"),
        };
        s = s with
        {
            CheckpointWrite = Run.CheckpointWritePolicy.From(c, errors),
            StopTimeoutSeconds = D("ect.run.stop-timeout-seconds", v => v is > 0 and <= 86400, "must be in (0, 86400]"),
        };
        S("ect.persistence.provider", v => v is "sqlite" or "postgresql", "must be \"sqlite\" or \"postgresql\"");
        I("ect.data.max-images", v => v >= 0, "must be >= 0 (0 = every image of the dataset)");
        I("ect.network.model-channels", v => v > 0, "must be > 0");
        I("ect.network.num-blocks", v => v > 0, "must be > 0");
        I("ect.network.augment-dim", v => v >= 0, "must be >= 0 (0 = no map_augment layer; EDM's augmented checkpoints: 9)");
        D("ect.network.dropout", v => v is >= 0 and < 1, "must be in [0, 1)");
        // Validated and kept (the engine receives these values, not the keys).
        s = s with
        {
            Pretrain = new PretrainSettings(D("ect.pretrain.p-mean", _ => true, "a number"), D("ect.pretrain.p-std", _ => true, "a number")),
            Tuning = new TuningSettings(
                S("ect.tuning.optimizer", v => v is "radam" or "adam", "must be \"radam\" or \"adam\"") == "adam" ? OptimizerKind.Adam : OptimizerKind.RAdam,
                D("ect.tuning.p-mean", _ => true, "a number"), D("ect.tuning.p-std", _ => true, "a number"),
                S("ect.tuning.mapping", v => v is "sigmoid" or "const", "must be \"sigmoid\" or \"const\"") == "const" ? MappingKind.Const : MappingKind.Sigmoid,
                D("ect.tuning.q", v => v > 1, "must be > 1"), D("ect.tuning.k", _ => true, "a number"),
                D("ect.tuning.b", _ => true, "a number"), D("ect.tuning.c", _ => true, "a number")),
        };
        Get("ect.network.channel-mult", x => c.GetIntList(x), v => v.Count > 0 && v.All(m => m > 0), "a non-empty list of positive integers");
        Ect.Actors.Engine.Edm2Engines.Check(c, errors); // network.type = edm2: its keys (ect.network.dropout-res, ect.edm2.*)

        // Live keys: a sane range each (LiveKeyRanges), for a key whose own rule above did not already refuse it.
        errors.AddRange(LiveKeyRanges.Violations(c).Where(v => !errors.Any(e => e.StartsWith(v[..v.IndexOf(' ')] + " ", StringComparison.Ordinal))));
        if (checkData && errors.Count == 0 && s.Engine == "torch" && !File.Exists(s.DataPath) && !Directory.Exists(s.DataPath))
            errors.Add($"ect.data.path = \"{s.DataPath}\": no such file or folder (install Fashion-MNIST with `apt-get install dataset-fashion-mnist` or point ect.data.path at a dataset)");
        if (errors.Count > 0)
            throw new ConfigurationException("Configuration refused:\n  " + string.Join("\n  ", errors));
        return s;
    }

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
            if (steps.Count == 0 || steps.Any(n => n is < 1 or > 2)) errors.Add($"{at}.sampling-steps: each must be 1 or 2");
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
                if (!ok(v)) errors.Add($"{at}.{k} = {Show(e, k)}: {rule}");
                return v;
            }
            catch (Exception) { errors.Add($"{at}.{k} = {Show(e, k)}: not a valid value ({rule})"); return fallback; }
        }

        var steps = Get<IReadOnlyList<int>>("sampling-steps", [1, 2], k => e.GetIntList(k).ToList(),
            v => v.Count > 0 && v.All(n => n is 1 or 2) && v.Distinct().Count() == v.Count, "a non-empty list of distinct values 1 or 2");
        var count = Get("count", 2000, k => e.GetInt(k), v => v >= 2, "must be >= 2 (a Frechet distance needs 2 images)");
        var seed = Get("seed", 1234, k => e.GetInt(k), _ => true, "an integer");
        var tMax = Get("t-max", 80.0, k => e.GetDouble(k), v => v > 0 && double.IsFinite(v), "must be > 0");
        var midT = Get("mid-t", 0.821, k => e.GetDouble(k), v => v > 0 && double.IsFinite(v), "must be > 0");
        if (tMax > 0 && midT > 0 && midT >= tMax) errors.Add($"{at}.mid-t = {Show(e, "mid-t")}: must be < t-max ({tMax})");
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

    private static string Show(Config c, string key)
    {
        try { var v = c.GetValue(key); return v == null ? "(missing)" : EctConfiguration.Inline(v); }
        catch { return "(unreadable)"; }
    }
}
