using Akka.Configuration;
using Ect.Compute.Losses;
using Ect.Compute.Optim;

namespace Ect.Actors.Configuration;

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
    /// <summary>ect.run.device as written (auto, cpu, cuda, cuda:N): resolved against libtorch by ComputeDevice.Resolve (Engines.Device).</summary>
    public string Device { get; init; } = "auto";
    /// <summary>ect.run.deterministic: deterministic CUDA kernels (ComputeDevice.ApplyDeterminism; nothing changes on the CPU).</summary>
    public bool Deterministic { get; init; } = true;
    /// <summary>ect.run.mixed-precision: off, bf16 or fp16 (Ect.Compute.Runtime.MixedPrecision).</summary>
    public string MixedPrecision { get; init; } = "off";
    public required string DataPath { get; init; }
    public required int BatchSize { get; init; }
    public required int Prefetch { get; init; }
    public required bool UseLabels { get; init; }
    /// <summary>ect.data.resolution: images are padded or resized to it.</summary>
    public int Resolution { get; init; }
    /// <summary>ect.data.max-images: train on the first N images only (0 = every image).</summary>
    public int MaxImages { get; init; }
    public string NetworkType => Network.Type;
    // The sections below are read and validated once here; the engines receive them whole (Engines.Torch,
    // Edm2Engines.Create, Engines.Fake) and read no key themselves.
    /// <summary>ect.network.*: the architecture (the data set gives its resolution, channels and classes).</summary>
    public NetworkSettings Network { get; init; } = null!;
    /// <summary>ect.pretrain.p-mean/p-std (TrainingSettings.cs); the lr is <see cref="PretrainLr"/>, a live key.</summary>
    public PretrainSettings Pretrain { get; init; } = null!;
    /// <summary>ect.tuning.*: optimiser, mapping and loss (TrainingSettings.cs); the lr is <see cref="TuningLr"/>, a live key.</summary>
    public TuningSettings Tuning { get; init; } = null!;
    /// <summary>ect.edm2.*: read when the network type is edm2.</summary>
    public Edm2Settings Edm2 { get; init; } = null!;
    /// <summary>ect.fake.*: the fake engine's knobs.</summary>
    public FakeEngineSettings Fake { get; init; } = null!;
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
    /// <summary>ect.evaluation.*: when the evaluators run, their threads, and the evaluators.</summary>
    public required EvaluationSettings Evaluation { get; init; }
    public required string DisplayMode { get; init; }
    public required double LogIntervalSeconds { get; init; }
    public required int SnapshotEvery { get; init; }
    /// <summary>Tries of a failed checkpoint write and the wait between them (ect.checkpoint.write-*).</summary>
    public Checkpoints.CheckpointWritePolicy CheckpointWrite { get; init; } = Checkpoints.CheckpointWritePolicy.Default;
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
        var r = new SettingsReader(c, errors);
        long L(string k, Func<long, bool> ok, string rule) => r.Long(k, ok, rule);
        int I(string k, Func<int, bool> ok, string rule) => r.Int(k, ok, rule);
        double D(string k, Func<double, bool> ok, string rule) => r.Double(k, ok, rule);
        string S(string k, Func<string, bool> ok, string rule) => r.String(k, ok, rule);

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
            UseLabels = r.Bool("ect.data.use-labels"),
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
            Evaluation = EvaluationSettings.Read(r, errors),
            DisplayMode = S("ect.display.mode", v => v is "auto" or "live" or "plain" or "off", "must be auto, live, plain or off"),
            LogIntervalSeconds = D("ect.display.log-interval-seconds", v => v > 0, "must be > 0"),
            SnapshotEvery = I("ect.persistence.snapshot-every-events", v => v >= 1, "must be >= 1"),
        };
        s = s with
        {
            CheckpointWrite = Checkpoints.CheckpointWritePolicy.From(c, errors),
            StopTimeoutSeconds = D("ect.run.stop-timeout-seconds", v => v is > 0 and <= 86400, "must be in (0, 86400]"),
            Device = S("ect.run.device", Ect.Compute.Runtime.ComputeDevice.IsValidSetting, "must be auto, cpu, cuda or cuda:N (N a CUDA device index, e.g. cuda:0)"),
            Deterministic = r.Bool("ect.run.deterministic"),
            MixedPrecision = S("ect.run.mixed-precision", v => v is "off" or "bf16" or "fp16", "must be off, bf16 or fp16"),
        };
        S("ect.persistence.provider", v => v is "sqlite" or "postgresql", "must be \"sqlite\" or \"postgresql\"");
        // Validated and kept (the engine receives these values, not the keys).
        var network = NetworkSettings.Read(r);
        s = s with
        {
            Resolution = I("ect.data.resolution", v => v > 0, "must be > 0 (images are padded or resized to it)"),
            MaxImages = I("ect.data.max-images", v => v >= 0, "must be >= 0 (0 = every image of the dataset)"),
            Network = network,
            Edm2 = Edm2Settings.Read(network.IsEdm2 ? r : r.Quiet()),
            Fake = FakeEngineSettings.Read(r),
            Pretrain = new PretrainSettings(D("ect.pretrain.p-mean", _ => true, "a number"), D("ect.pretrain.p-std", _ => true, "a number")),
            Tuning = new TuningSettings(
                S("ect.tuning.optimizer", v => v is "radam" or "adam", "must be \"radam\" or \"adam\"") == "adam" ? OptimizerKind.Adam : OptimizerKind.RAdam,
                D("ect.tuning.p-mean", _ => true, "a number"), D("ect.tuning.p-std", _ => true, "a number"),
                S("ect.tuning.mapping", v => v is "sigmoid" or "const", "must be \"sigmoid\" or \"const\"") == "const" ? MappingKind.Const : MappingKind.Sigmoid,
                D("ect.tuning.q", v => v > 1, "must be > 1"), D("ect.tuning.k", _ => true, "a number"),
                D("ect.tuning.b", _ => true, "a number"), D("ect.tuning.c", _ => true, "a number")),
        };
        if (network.IsEdm2) CheckEdm2Training(s, errors);

        // Live keys: a sane range each (LiveKeyRanges), for a key whose own rule above did not already refuse it.
        errors.AddRange(LiveKeyRanges.Violations(c).Where(v => !errors.Any(e => e.StartsWith(v[..v.IndexOf(' ')] + " ", StringComparison.Ordinal))));
        if (checkData && errors.Count == 0 && s.Engine == "torch" && !File.Exists(s.DataPath) && !Directory.Exists(s.DataPath))
            errors.Add($"ect.data.path = \"{s.DataPath}\": no such file or folder (install Fashion-MNIST with `apt-get install dataset-fashion-mnist` or point ect.data.path at a dataset)");
        if (errors.Count > 0)
            throw new ConfigurationException("Configuration refused:\n  " + string.Join("\n  ", errors));
        return s;
    }

    /// <summary>network.type = edm2 trains as the imgnet branch does: rules across the tuning section.</summary>
    private static void CheckEdm2Training(RunSettings s, List<string> errors)
    {
        if (s.Tuning.Optimizer != OptimizerKind.Adam && !errors.Any(e => e.StartsWith("ect.tuning.optimizer ", StringComparison.Ordinal)))
            errors.Add($"ect.tuning.optimizer = {SettingsReader.Show(s.Config, "ect.tuning.optimizer")}: network.type = edm2 trains with Adam (the imgnet branch's); set ect.tuning.optimizer = adam");
        if (!(s.Tuning.C > 0) && !errors.Any(e => e.StartsWith("ect.tuning.c ", StringComparison.Ordinal)))
            errors.Add($"ect.tuning.c = {SettingsReader.Show(s.Config, "ect.tuning.c")}: the imgnet branch's loss needs a Huber constant c > 0 (its default 0.06)");
    }
}
