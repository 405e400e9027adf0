using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Ect.Actors.Evaluation;
using Ect.Compute.Evaluation;
using Ect.Data;
using Spectre.Console;
using TorchSharp;
using Ect.Compute.IO;
using Ect.Actors.Checkpoints;

namespace Ect.Actors.Cli;

/// <summary>Everything `ect eval` reads from its command line.</summary>
public sealed record EvalArgs
{
    public string? Checkpoint { get; init; }
    public string? Teacher { get; init; }
    public string Metric { get; init; } = "fd-resnet18";
    public int? Steps { get; init; }
    public string? Sampler { get; init; }
    public int? Nfe { get; init; }
    public string? T { get; init; }
    public int? Num { get; init; }
    public int Seed { get; init; }
    public string? Data { get; init; }
    public string? InceptionWeights { get; init; }
    public string? Out { get; init; }
    public bool Overwrite { get; init; }
    public int Threads { get; init; } = 2;
    public string? CacheDir { get; init; }
    public int? RefNum { get; init; }
    public int Batch { get; init; } = 32;
    public string? Grid { get; init; }
    public int GridCount { get; init; } = 64;
    /// <summary>--class K: every image of class K (a class-conditional network); null: image i gets class i mod L.</summary>
    public int? Class { get; init; }
}

/// <summary>
/// `ect eval --checkpoint CK --metric fd-resnet18|fid --steps 1|2|.. --num N [--seed S] [--data PATH] [--out FILE.json]`:
/// a Frechet distance of N images sampled from a checkpoint's EMA network (ConsistencySampler) against the dataset's
/// reference statistics (cached). `--teacher CK --sampler heun --nfe 35` samples with EDM's Heun sampler instead
/// (18 steps). Prints "FD-ResNet18 = v" or "FID = v" (an FD-ResNet18 value is never called FID) and writes a JSON file.
/// Any network the daemon trains (DDPM++, NCSN++, EDM2); `--class K` samples one class of a class-conditional one.
/// User mistakes exit 1 with a message on stderr; a progress bar on a terminal, plain lines otherwise.
/// </summary>
public sealed class EvalVerb : ICliVerb
{
    public int Order => 40;

    public Command Build()
    {
        var checkpoint = new Option<string?>("--checkpoint") { Description = "A checkpoint of `ect train` (RUN_DIR/checkpoints/ckpt-*.ckpt), an exported .safetensors, or a run directory (its latest checkpoint); its EMA network is sampled with the consistency sampler." };
        var teacher = new Option<string?>("--teacher") { Description = "A checkpoint, exported .safetensors or run directory (its latest checkpoint) whose EMA network is sampled as an EDM denoiser (use with --sampler heun)." };
        var metric = new Option<string>("--metric") { Description = "fd-resnet18 (cheap, not FID) or fid (Inception-v3, needs --inception-weights).", DefaultValueFactory = _ => "fd-resnet18" };
        var steps = new Option<int?>("--steps") { Description = "Sampling steps (consistency: 1 -> t=[80], 2 -> [80, 0.821], more: EDM rho=7 schedule; heun: N steps = 2N-1 evaluations)." };
        var sampler = new Option<string?>("--sampler") { Description = "consistency (default with --checkpoint; with --teacher: the diffusion model's own few-step output, a baseline) or heun (default with --teacher)." };
        var nfe = new Option<int?>("--nfe") { Description = "Heun: network evaluations (odd, 2*steps-1; 35 = 18 steps)." };
        var t = new Option<string?>("--t") { Description = "Consistency times, comma-separated and decreasing, e.g. 80,0.821 (overrides --steps)." };
        var num = new Option<int?>("--num") { Description = "Number of generated images (>= 2; 10000 or 50000 for the usual protocol)." };
        var seed = new Option<int>("--seed") { Description = "Noise seed.", DefaultValueFactory = _ => 0 };
        var data = new Option<string?>("--data") { Description = "Reference dataset (default: the checkpoint's data-path)." };
        var weights = new Option<string?>("--inception-weights") { Description = "pytorch-fid weights (pt_inception-2015-12-05-6726825d.pth or .safetensors); fid only." };
        var output = new Option<string?>("--out") { Description = "JSON result file (default: RUN_DIR/eval/<checkpoint>.<metric>-<sampler>-<N>step.json for a run's checkpoint, beside the file otherwise; an existing default name gets -2, -3, ...). An existing --out file is refused unless --overwrite." };
        var overwrite = new Option<bool>("--overwrite") { Description = "Replace an existing --out file." };
        var threads = new Option<int>("--threads") { Description = "CPU threads for TorchSharp and ONNX Runtime.", DefaultValueFactory = _ => 2 };
        var cacheDir = new Option<string?>("--cache-dir") { Description = "Reference statistics cache folder (default ~/.cache/ect/stats)." };
        var refNum = new Option<int?>("--ref-num") { Description = "Reference images: the first K of the dataset (default: as many as --num, at most the whole dataset; statistics are cached)." };
        var batch = new Option<int>("--batch") { Description = "Images per generation batch.", DefaultValueFactory = _ => 32 };
        var grid = new Option<string?>("--grid") { Description = "Also save the first --grid-count generated images (the ones measured) as a PNG grid." };
        var gridCount = new Option<int?>("--grid-count") { Description = "Images in the --grid PNG (a square number looks best; default 64, or --num when smaller)." };
        var @class = new Option<int?>("--class") { Description = "Class-conditional networks: every image of class K (0..classes-1; the reference statistics stay the whole dataset's). Default: image i gets class i mod classes, as the daemon's fd-resnet18." };
        var cmd = new Command("eval", "FD-ResNet18 or FID of a checkpoint's few-step (or Heun) samples against a dataset.");
        foreach (var o in new Option[] { checkpoint, teacher, metric, steps, sampler, nfe, t, num, seed, data, weights, output, overwrite, threads, cacheDir, refNum, batch, grid, gridCount, @class })
            cmd.Options.Add(o);
        cmd.SetAction((r, ct) => Task.Run(() => Run(new EvalArgs
        {
            Checkpoint = r.GetValue(checkpoint), Teacher = r.GetValue(teacher), Metric = r.GetValue(metric)!, Steps = r.GetValue(steps),
            Sampler = r.GetValue(sampler), Nfe = r.GetValue(nfe), T = r.GetValue(t), Num = r.GetValue(num), Seed = r.GetValue(seed),
            Data = r.GetValue(data), InceptionWeights = r.GetValue(weights), Out = r.GetValue(output), Overwrite = r.GetValue(overwrite), Threads = r.GetValue(threads),
            CacheDir = r.GetValue(cacheDir), RefNum = r.GetValue(refNum), Batch = r.GetValue(batch),
            Grid = r.GetValue(grid), GridCount = r.GetValue(gridCount) ?? Math.Min(64, Math.Max(1, r.GetValue(num) ?? 64)), Class = r.GetValue(@class),
        }, ct), ct));
        return cmd;
    }

    private sealed class UsageException(string message) : Exception(message);

    public static int Run(EvalArgs a, CancellationToken ct = default)
    {
        try
        {
            return RunChecked(a, ct);
        }
        catch (Exception e) when (e is UsageException or InvalidDataException or FileNotFoundException or DirectoryNotFoundException
                                      or DatasetException or ArgumentException)
        {
            Console.Error.WriteLine($"ect eval: {e.Message}");
            return 1;
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("ect eval: cancelled.");
            return 130;
        }
    }

    private static int RunChecked(EvalArgs a, CancellationToken ct)
    {
        // Everything that can be checked without loading anything comes first.
        if ((a.Checkpoint is null) == (a.Teacher is null))
            throw new UsageException("give exactly one of --checkpoint CK (consistency sampling) or --teacher CK (Heun sampling).");
        var given = (a.Checkpoint ?? a.Teacher)!;
        var metric = a.Metric.ToLowerInvariant() switch
        {
            "fd-resnet18" => "fd-resnet18",
            "fid" => "fid",
            _ => throw new UsageException($"--metric {a.Metric}: unknown metric; use fd-resnet18 (cheap, not FID) or fid."),
        };
        if (metric == "fid" && string.IsNullOrEmpty(a.InceptionWeights))
            throw new UsageException($"--metric fid needs --inception-weights FILE (pytorch-fid's weights: {InceptionV3Fid.WeightsUrl}; see docs/evaluation.md). For a cheap metric without weights use --metric fd-resnet18.");
        if (metric == "fid" && !File.Exists(a.InceptionWeights))
            throw new UsageException($"--inception-weights {a.InceptionWeights}: no such file.");
        if (a.Num is not { } num) throw new UsageException("--num N is required (number of generated images, >= 2).");
        if (num < 2) throw new UsageException($"--num {num}: a Frechet distance needs at least 2 images (the covariance divides by N-1).");
        if (a.Threads < 1) throw new UsageException($"--threads {a.Threads}: must be >= 1.");
        if (a.Batch < 1) throw new UsageException($"--batch {a.Batch}: must be >= 1.");
        if (a.Grid is not null && (a.GridCount < 1 || a.GridCount > num))
            throw new UsageException($"--grid-count {a.GridCount}: must be between 1 and --num ({num}).");
        if (a.RefNum is < 2) throw new UsageException($"--ref-num {a.RefNum}: must be >= 2.");
        if (a.Class is < 0) throw new UsageException($"--class {a.Class}: a class index is >= 0.");
        var sampler = ChooseSampler(a);
        if (a.Out is { } explicitOut && File.Exists(explicitOut) && !a.Overwrite)
            throw new UsageException($"--out {explicitOut}: the file exists (an earlier result?); choose another --out, or pass --overwrite to replace it.");
        // A run directory means its latest checkpoint, as for `ect inspect` and `ect export`.
        var path = Directory.Exists(given) ? Checkpoints.CheckpointSummary.LatestIn(given) : given;
        if (!File.Exists(path)) throw new UsageException($"checkpoint '{path}' does not exist.");
        // Default reference size: as many images as are generated (at most the dataset), the protocol of docs/results.md
        // (10,000 samples vs the first 10,000 training images); the whole training set cost ~25 minutes for any --num.
        var refNum = a.RefNum ?? num;

        Ect.Compute.Runtime.LibTorchBackends.Configure(); // no NNPACK: its "Unsupported hardware" line per convolution
        torch.set_num_threads(a.Threads);
        using var model = CheckpointModel.Load(path, a.Teacher is not null ? PrecondKind.Edm : PrecondKind.Ect);
        var labelDim = model.Net.LabelDim;
        if (a.Class is { } k && labelDim == 0)
            throw new UsageException($"--class {k}: '{path}' holds an unconditional {model.NetworkName} network (no class labels); leave out --class.");
        if (a.Class is { } k2 && k2 >= labelDim)
            throw new UsageException($"--class {k2}: '{path}' has {labelDim} classes (0..{labelDim - 1}).");
        var dataPath = a.Data ?? model.DataPath
            ?? throw new UsageException($"'{path}' does not name its dataset (metadata user.data-path); pass --data PATH.");
        if (!File.Exists(dataPath) && !Directory.Exists(dataPath))
            throw new UsageException($"dataset '{dataPath}' does not exist{(a.Data is null ? $" (named by '{path}'); pass --data PATH" : "")}.");
        var cacheDir = a.CacheDir ?? DatasetReference.DefaultCacheDirectory;

        using IFeatureExtractor extractor = metric == "fid" ? LoadInception(a.InceptionWeights!) : new ResNet18OnnxExtractor(a.Threads);
        var label = metric == "fid" ? "FID" : ResNet18OnnxExtractor.MetricName;
        // The grid shows the first images of the measured set itself, not a separate draw.
        var gridPixels = new List<float>();
        var gridImages = 0;
        var request = new EvalRequest(model, sampler, extractor, dataPath, num, a.Seed, refNum, cacheDir, a.Batch)
        {
            Classes = a.Class is { } only ? new ClassLabels.One(only) : null,
            OnGenerated = a.Grid is null ? null : x =>
            {
                var take = (int)Math.Min(a.GridCount - gridImages, x.shape[0]);
                if (take <= 0) return;
                using var part = x.narrow(0, 0, take).contiguous();
                gridPixels.AddRange(part.data<float>().ToArray());
                gridImages += take;
            },
        };
        var classes = labelDim == 0 ? "" : a.Class is { } one ? $", class {one} only" : $", classes i mod {labelDim}";
        Console.Out.WriteLine($"ect eval: {label} of {num} images from '{path}' ({model.NetworkName}, step {model.Step}, {model.Phase}{classes}), " +
                              $"{sampler.Name} sampler, {sampler.Steps} step(s), {sampler.Nfe} NFE, seed {a.Seed}; reference: the first {refNum} images of '{dataPath}'" +
                              (a.RefNum is null ? " (--ref-num defaults to --num; give --ref-num K for another count)" : ""));
        if (a.Checkpoint is not null && model.TrainedAs == PrecondKind.Edm)
            Console.Error.WriteLine($"note: '{path}' is from {model.Phase} (an EDM denoiser, not yet consistency-tuned): --checkpoint samples it as ECT's model at " +
                                    "tuning step 0 (ECT's preconditioning with its sigma_min boundary), not an ECT result; `--teacher CK` samples it as EDM's " +
                                    "denoiser (with `--sampler heun` as EDM does). The two give different samples and values.");
        var outcome = WithProgress(p => CheckpointEvaluation.Run(request, p, ct));

        foreach (var w in outcome.Metric.Warnings) Console.Error.WriteLine($"warning: {w}");
        Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{label} = {outcome.Metric.Value:0.####} ({num} images vs {outcome.ReferenceImages} reference images{(outcome.ReferenceFromCache ? ", cached" : "")}; {outcome.Elapsed.TotalSeconds:0.0} s)"));

        if (a.Grid is not null)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(a.Grid))!);
            // The grid a person looks at (scaled up, captioned) under the given name; the raw-size grid for tools beside it.
            var raw = Path.ChangeExtension(a.Grid, null) + ".raw.png";
            Ect.Actors.Output.Png.SaveGrid(raw, gridPixels.ToArray(), gridImages, model.Net.ImgChannels, model.Net.ImgResolution);
            var times = sampler is SamplerChoice.Consistency c ? ", t = " + string.Join(", ", c.T.Select(t => t.ToString("0.###", CultureInfo.InvariantCulture))) : "";
            Ect.Actors.Output.ViewGrid.Save(a.Grid, gridPixels.ToArray(), gridImages, model.Net.ImgChannels, model.Net.ImgResolution,
                $"{Path.GetFileName(path)} step {model.Step} | {sampler.Name}, {sampler.Steps} step(s){times} | seed {a.Seed}{(a.Class is { } gc ? $" | class {gc}" : "")}");
            Console.Out.WriteLine($"wrote {a.Grid} ({gridImages} images, each scaled to >= {Ect.Actors.Output.ViewGrid.MinTilePixels} px) and {raw} (raw size)");
        }
        var outPath = a.Out ?? EvalResultPath.Default(path, $"{metric}-{sampler.Name}-{sampler.Steps}step{(a.Class is { } cl ? $"-class{cl}" : "")}");
        WriteJson(outPath, label, outcome, model, sampler, a.Seed, num, dataPath, a.Class, overwrite: a.Out is not null && a.Overwrite);
        Console.Out.WriteLine($"wrote {outPath}");
        return 0;
    }

    private static SamplerChoice ChooseSampler(EvalArgs a)
    {
        var name = (a.Sampler ?? (a.Teacher is not null ? "heun" : "consistency")).ToLowerInvariant();
        if (name == "heun")
        {
            if (a.Checkpoint is not null) throw new UsageException("--sampler heun samples an EDM denoiser: give the checkpoint with --teacher CK.");
            int steps;
            if (a.Nfe is { } nfe)
            {
                if (nfe < 3 || nfe % 2 == 0) throw new UsageException($"--nfe {nfe}: Heun uses 2*steps-1 evaluations, so an odd number >= 3 (35 = 18 steps).");
                steps = (nfe + 1) / 2;
                if (a.Steps is { } s && s != steps) throw new UsageException($"--nfe {nfe} means {steps} steps, but --steps {s} was given.");
            }
            else steps = a.Steps ?? 18;
            if (steps < 2) throw new UsageException($"--steps {steps}: Heun needs >= 2 steps.");
            return new SamplerChoice.Heun(steps);
        }
        if (name != "consistency") throw new UsageException($"--sampler {a.Sampler}: use consistency or heun.");
        // --teacher CK --sampler consistency --steps 1|2: the diffusion model's own few-step output (D(80 z, 80), then
        // re-noised to mid-t), the baseline that shows what consistency tuning adds.
        if (a.Nfe is not null) throw new UsageException("--nfe is for --sampler heun; the consistency sampler takes --steps or --t.");
        if (a.T is { } list)
        {
            var t = new List<double>();
            foreach (var part in list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                t.Add(double.TryParse(part, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && v > 0 && double.IsFinite(v) ? v
                    : throw new UsageException($"--t {list}: '{part}' is not a positive number."));
            if (t.Count == 0) throw new UsageException("--t needs at least one time, e.g. 80 or 80,0.821.");
            for (var i = 1; i < t.Count; i++)
                if (t[i] >= t[i - 1]) throw new UsageException($"--t {list}: times must decrease.");
            if (a.Steps is { } s && s != t.Count) throw new UsageException($"--t has {t.Count} time(s) but --steps {s} was given.");
            return new SamplerChoice.Consistency(t);
        }
        var n = a.Steps ?? 1;
        if (n < 1) throw new UsageException($"--steps {n}: must be >= 1.");
        return new SamplerChoice.Consistency(SamplerChoice.ConsistencyTimes(n));
    }

    private static InceptionV3Fid LoadInception(string weights)
    {
        var net = new InceptionV3Fid();
        try { net.LoadWeights(weights); return net; }
        catch { net.Dispose(); throw; }
    }

    private static EvaluationOutcome WithProgress(Func<IProgress<MetricProgress>, EvaluationOutcome> run)
    {
        if (!Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive)
        {
            return AnsiConsole.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
                .Start(ctx =>
                {
                    var tasks = new Dictionary<string, ProgressTask>();
                    return run(new Reporter(p =>
                    {
                        if (!tasks.TryGetValue(p.Stage, out var task)) tasks[p.Stage] = task = ctx.AddTask(p.Stage, maxValue: Math.Max(1, p.Total));
                        task.Value = p.Done;
                    }));
                });
        }
        // Plain lines (logs): each tenth of a stage, and at least every 30 s, with the rate and the time left.
        long lastDecile = -1;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var lastLine = TimeSpan.Zero;
        return run(new Reporter(p =>
        {
            var decile = p.Total == 0 ? 10 : p.Done * 10 / p.Total;
            if (p.Done == 0) { lastDecile = -1; clock.Restart(); lastLine = TimeSpan.Zero; }
            if (decile == lastDecile && clock.Elapsed - lastLine < TimeSpan.FromSeconds(30)) return;
            lastDecile = decile;
            lastLine = clock.Elapsed;
            var rate = p.Done / Math.Max(1e-9, clock.Elapsed.TotalSeconds);
            var eta = p.Done > 0 && rate > 0 ? TimeSpan.FromSeconds((p.Total - p.Done) / rate).ToString(@"hh\:mm\:ss") : "-";
            Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{p.Stage}: {p.Done}/{p.Total} images, {rate:0.0} img/s, eta {eta}"));
        }));
    }

    private sealed class Reporter(Action<MetricProgress> report) : IProgress<MetricProgress>
    {
        public void Report(MetricProgress value) => report(value);
    }

    private static void WriteJson(string outPath, string label, EvaluationOutcome o, CheckpointModel model, SamplerChoice sampler, int seed, int num, string dataPath,
        int? onlyClass, bool overwrite)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(outPath))!;
        Directory.CreateDirectory(dir);
        var doc = new Dictionary<string, object?>
        {
            ["metric"] = label,
            ["extractor"] = o.Metric.MetricName,
            ["value"] = o.Metric.Value,
            ["num"] = num,
            ["steps"] = sampler.Steps,
            ["nfe"] = sampler.Nfe,
            ["sampler"] = sampler.Name,
            ["t"] = sampler is SamplerChoice.Consistency c ? c.T : null,
            ["seed"] = seed,
            ["checkpoint"] = Path.GetFullPath(model.Path),
            ["step"] = model.Step,
            ["kimg"] = double.IsFinite(model.Kimg) ? model.Kimg : null,
            ["phase"] = model.Phase,
            ["precond"] = model.Kind.ToString().ToLowerInvariant(),
            ["trained_as"] = model.TrainedAs.ToString().ToLowerInvariant(),
            ["network"] = model.NetworkName,
            ["class"] = onlyClass,
            ["dataset"] = Path.GetFullPath(dataPath),
            ["reference_images"] = o.ReferenceImages,
            ["reference_cache"] = o.ReferenceCachePath,
            ["seconds"] = Math.Round(o.Elapsed.TotalSeconds, 3),
            ["warnings"] = o.Metric.Warnings,
        };
        var tmp = outPath + ".tmp";
        File.WriteAllText(tmp, JsonSerializer.Serialize(doc, new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
        try { AtomicFile.Commit(tmp, outPath, overwrite); }
        catch (IOException) when (!overwrite && File.Exists(outPath))
        {
            File.Delete(tmp);
            throw new UsageException($"--out {outPath}: the file appeared while evaluating; the result was not written over it. Run again with another --out.");
        }
    }
}
