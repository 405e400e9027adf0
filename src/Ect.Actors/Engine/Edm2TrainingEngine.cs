using Ect.Actors.Checkpoints;
using System.Globalization;
using System.Text.Json;
using Ect.Actors.Evaluation;
using Ect.Compute.IO;
using Ect.Compute.Losses;
using Ect.Compute.Networks;
using Ect.Compute.Networks.Edm2;
using Ect.Compute.Optim;
using Ect.Compute.Preconditioning;
using Ect.Compute.Sampling;
using Ect.Compute.Training;
using Ect.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Actors.Engine;

/// <summary>Everything the EDM2 engine needs, read from the run configuration (<see cref="Edm2Engines.Create"/>).</summary>
public sealed record Edm2EngineOptions(
    Edm2UNetConfig Network, int BatchSize, long Seed, int Threads, double EmaBeta, IReadOnlyList<double> PhemaStds,
    double AdamBeta1, double AdamBeta2, long LrDecayBatches,
    double PretrainLr, double PretrainPMean, double PretrainPStd,
    double TuningLr, double TuningPMean, double TuningPStd,
    MappingKind Mapping, double Q, double K, double B, double C)
{
    public string? DataPath { get; init; }
    public string? InitWeights { get; init; }
    public int EvaluationThreads { get; init; } = 1;
    /// <summary>Power-function EMA snapshots every this many (global) steps of the tuning phase, 0 = none.</summary>
    public long PhemaSnapshotEvery { get; init; }
}

/// <summary>
/// The engine of ect.network.type = edm2: an <see cref="Edm2Precond"/> trained by <see cref="Edm2TrainStep"/> (the
/// imgnet branch's loop body), with the fixed-beta EMA (ect.ema.beta: sampling, evaluators, checkpoints' <c>ema/</c>) and
/// the power-function EMAs (ect.edm2.phema-stds; in checkpoints as <c>phema-STD/</c>, and every
/// ect.edm2.phema-snapshot-every-steps steps of tuning in RUN_DIR/phema/ for `ect ema reconstruct`). Tuning: ECT loss
/// with the "snr + k" weighting and Huber c (ECMLoss of the branch), Adam (ect.edm2.adam-betas), lr = ect.tuning.lr /
/// sqrt(max(images / (lr-decay-batches batch), 1)), non-finite gradients set to 0. Class labels come from the data set
/// (label_dim = its class count when ect.data.use-labels is on); the sample grids show a class per row.
/// Deviation: pretraining (ect.pretrain.steps &gt; 0) uses EDM's loss (EdmLoss) with the same step, not EDM2's loss with
/// its learned log-variance weighting (ECT's copy of the network has no log-variance head; the recipe starts from an
/// EDM2 checkpoint instead). Deviation: the sample grids run the EMA in eval mode (the branch's in-training grids run
/// its EMA copies in train mode, with dropout and forced normalisation; its FID evaluation uses eval mode, as here).
/// </summary>
public sealed class Edm2TrainingEngine : ITrainingEngine, IDescribed
{
    public const string NetworkKindKey = "network-kind";
    public const string Edm2ConfigKey = "edm2-config";

    private readonly Edm2EngineOptions _o;
    private readonly Edm2Precond _net, _ema;
    private readonly List<Edm2Precond> _phema;
    private readonly string _scratchDir, _phemaDir;
    private readonly string? _initSha256;
    private readonly int _droppedInitTensors;
    private Edm2TrainStep? _step;
    private string? _phase;
    private long _globalStep;

    public Edm2TrainingEngine(Edm2EngineOptions options, string runDir)
    {
        _o = options;
        _scratchDir = Path.Combine(runDir, Run.Checkpointer.Folder);
        _phemaDir = Path.Combine(runDir, PhemaSnapshots.Folder);
        Directory.CreateDirectory(_scratchDir);
        Ect.Compute.Runtime.LibTorchBackends.Configure();
        torch.set_num_threads(options.Threads);
        torch.random.manual_seed(options.Seed); // weight initialisation (MPConv weights randn, MPFourier buffers)
        _net = new Edm2Precond(options.Network);
        _ema = new Edm2Precond(options.Network);
        _phema = options.PhemaStds.Select(_ => new Edm2Precond(options.Network)).ToList();
        if (options.InitWeights is { } init)
            (_initSha256, _droppedInitTensors) = LoadInitial(init, _net);
        foreach (var m in _phema.Prepend(_ema)) Ema.CopyWeights(_net, m);
    }

    /// <summary>
    /// Loads an EDM2 state dict by name into <paramref name="net"/>: a safetensors file with the Precond's keys
    /// (<c>unet.enc.64x64_conv.weight</c>, ...; NVlabs' <c>logvar_fourier.*</c> / <c>logvar_linear.*</c> are dropped, as
    /// the imgnet branch's --transfer drops them), or an ECT training state / EDM2 checkpoint of ours (its <c>ema/</c>
    /// tensors). Strict otherwise: a missing or misshapen tensor is refused by name. Returns the file's SHA-256 and the
    /// number of dropped tensors.
    /// </summary>
    public static (string Sha256, int Dropped) LoadInitial(string path, Edm2Precond net)
    {
        var contents = Safetensors.Read(path);
        try
        {
            bool state = contents.Metadata.TryGetValue("ect.format", out var fmt) && fmt == TrainState.FormatName;
            var prefix = state ? "ema/" : "";
            var picked = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            int dropped = 0;
            foreach (var (k, v) in contents.Tensors)
            {
                if (!k.StartsWith(prefix, StringComparison.Ordinal)) continue;
                var name = k[prefix.Length..];
                if (name.StartsWith("logvar_fourier.", StringComparison.Ordinal) || name.StartsWith("logvar_linear.", StringComparison.Ordinal)) { dropped++; continue; }
                picked[name] = v;
            }
            try { net.LoadStateDict(picked); }
            catch (ArgumentException e) { throw new InvalidDataException($"ect.network.init '{path}' does not fit the configured EDM2 network: {e.Message}", e); }
            using var fs = File.OpenRead(path);
            return (Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(fs)).ToLowerInvariant(), dropped);
        }
        finally { foreach (var t in contents.Tensors.Values) t.Dispose(); }
    }

    public string Description
    {
        get
        {
            var n = _o.Network;
            long parameters = _net.parameters().Sum(p => p.numel());
            var attn = n.AttnResolutions.Count == 0 ? "no attention" : $"attention at {string.Join(",", n.AttnResolutions)}";
            var drop = n.DropoutRes > 0 ? $"dropout {n.Dropout} at <= {n.DropoutRes}px" : $"dropout {n.Dropout}";
            var labels = n.LabelDim > 0 ? $", {n.LabelDim} classes" : ", unconditional";
            var from = _o.InitWeights is { } init
                ? $"; initial weights {init} (sha256 {_initSha256?[..12]}...{(_droppedInitTensors > 0 ? $", {_droppedInitTensors} log-variance tensors dropped" : "")})"
                : "; random initial weights (EDM2 init)";
            return FormattableString.Invariant(
                $"EDM2 (magnitude-preserving U-Net) {n.ModelChannels} ch x [{string.Join(",", n.ChannelMult)}], {n.NumBlocks} block(s)/level, {attn}, {drop}{labels}, {n.ImgResolution}x{n.ImgResolution}x{n.ImgChannels}: {parameters:N0} parameters; power-function EMA stds {string.Join(", ", _o.PhemaStds)} beside EMA {_o.EmaBeta}{from}");
        }
    }

    public void SetPhase(string phase)
    {
        if (phase == _phase) return;
        var fromPretrain = _phase == Phases.Pretrain && _step != null;
        _step?.Dispose();
        ITrainingLoss loss;
        double lr;
        long seed;
        if (phase == Phases.Pretrain)
        {
            loss = new EdmLoss(_o.PretrainPMean, _o.PretrainPStd);
            (lr, seed) = (_o.PretrainLr, _o.Seed);
        }
        else
        {
            // ECT starts from the pretrained model's EMA (the recipe: the EDM2 checkpoint's EMA through --transfer).
            if (fromPretrain) Ema.CopyWeights(_ema, _net);
            loss = new EctLoss(new MappingFunction(_o.Mapping, _o.Q, _o.K, _o.B), _o.TuningPMean, _o.TuningPStd, c: _o.C, weighting: EctWeighting.SnrPlusK);
            (lr, seed) = (_o.TuningLr, _o.Seed + 1);
        }
        var cfg = new Edm2TrainStepConfig(_o.BatchSize, new OptimizerConfig(OptimizerKind.Adam, lr, _o.AdamBeta1, _o.AdamBeta2, 1e-8),
            _o.LrDecayBatches, _o.EmaBeta, _o.PhemaStds, Seed: seed);
        _step = new Edm2TrainStep(_net, _ema, _phema.Cast<Precond>().ToList(), loss, cfg);
        _phase = phase;
    }

    private Edm2TrainStep Step_ => _step ?? throw new InvalidOperationException("SetPhase first");

    public void SetStage(int stage) => Step_.SetStage(stage);
    public void SetLearningRate(double lr) => Step_.SetLearningRate(lr);

    public EngineStepResult Step(Batch batch)
    {
        var b = (ImageBatch)batch.Payload;
        var s = Step_.Step(b.Images, b.Labels);
        _globalStep++;
        if (_o.PhemaSnapshotEvery > 0 && _phase == Phases.Tuning && _globalStep % _o.PhemaSnapshotEvery == 0)
        {
            // On the trainer thread, atomically; a resumed run recomputes the same steps and rewrites the same bits.
            Directory.CreateDirectory(_phemaDir);
            PhemaSnapshots.Write(PhemaSnapshots.FileFor(_phemaDir, _globalStep), _globalStep, Step_.ImagesSeen, _o.PhemaStds,
                _phema.Cast<nn.Module>().ToList(), Describe(new Dictionary<string, string> { ["step"] = _globalStep.ToString(CultureInfo.InvariantCulture) }));
        }
        return new EngineStepResult(s.LossMean, batch.Count);
    }

    private IReadOnlyDictionary<string, string> Describe(IReadOnlyDictionary<string, string> metadata)
    {
        var m = new Dictionary<string, string>(metadata, StringComparer.Ordinal);
        m.TryAdd(NetworkKindKey, Edm2Engines.NetworkType);
        m.TryAdd(Edm2ConfigKey, SerializeConfig(_o.Network));
        m.TryAdd(CheckpointModel.PrecondKey, _phase == Phases.Pretrain ? "edm" : "ect");
        m.TryAdd(CheckpointModel.SigmaDataKey, _net.SigmaData.ToString("R", CultureInfo.InvariantCulture));
        m.TryAdd(CheckpointModel.PhaseKey, _phase ?? "");
        if (_o.DataPath is not null) m.TryAdd(CheckpointModel.DataPathKey, _o.DataPath);
        if (_o.InitWeights is { } init) { m.TryAdd("init-weights", init); m.TryAdd("init-sha256", _initSha256!); }
        return m;
    }

    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.KebabCaseLower };

    public static string SerializeConfig(Edm2UNetConfig config) => JsonSerializer.Serialize(config, Json);

    public static Edm2UNetConfig DeserializeConfig(string json) =>
        JsonSerializer.Deserialize<Edm2UNetConfig>(json, Json) ?? throw new JsonException("edm2-config is null");

    public ICheckpointImage Capture(IReadOnlyDictionary<string, string> metadata)
    {
        var path = Path.Combine(_scratchDir, $".capture-{Guid.NewGuid():N}");
        TrainState.Save(path, Step_, Describe(metadata));
        return new CapturedFile(path);
    }

    private sealed class CapturedFile(string path) : ICheckpointImage
    {
        private bool _moved;
        public void WriteTo(string target) { File.Move(path, target, overwrite: true); _moved = true; }
        public void Dispose() { if (!_moved) try { File.Delete(path); } catch (IOException) { } }
    }

    public IReadOnlyDictionary<string, string> LoadCheckpoint(string path)
    {
        var meta = TrainState.Load(path, Step_);
        if (meta.TryGetValue("step", out var st) && long.TryParse(st, NumberStyles.None, CultureInfo.InvariantCulture, out var step)) _globalStep = step;
        return meta;
    }

    public IEvaluationModel CaptureEma()
    {
        var copy = new Edm2Precond(_o.Network);
        Ema.CopyWeights(_ema, copy);
        copy.eval();
        foreach (var p in copy.parameters()) p.requires_grad = false;
        return new EmaModel(copy, _o.Network, _o.EvaluationThreads);
    }

    private sealed class EmaModel(Edm2Precond net, Edm2UNetConfig cfg, int threads) : IEvaluationModel
    {
        public int Channels => cfg.ImgChannels;
        public int Resolution => cfg.ImgResolution;

        // firstImage (the index of this call's first image in an evaluation of several batches; ImageGenerator's label
        // offset for DDPM++) is not used: an EDM2 batch labels its images a row per class (GridClasses), so every FD
        // batch of a class-conditional network holds every class equally. Not yet ImageGenerator's (issue 13, point 4).
        public float[] Generate(int count, int samplingSteps, int seed, double tMax, double midT, int firstImage = 0)
        {
            torch.set_num_threads(threads); // per thread: see TorchTrainingEngine's EmaModel
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var g = new Generator((ulong)seed);
            var latents = randn([count, Channels, Resolution, Resolution], dtype: float64, generator: g);
            Tensor? labels = null;
            if (cfg.LabelDim > 0)
                labels = nn.functional.one_hot(tensor(GridClasses(count, cfg.LabelDim), dtype: int64), cfg.LabelDim).to(float32);
            IReadOnlyList<double> t = samplingSteps == 1 ? [tMax] : [tMax, midT];
            var x = ConsistencySampler.Sample(net, latents, t, labels, g);
            return x.clamp(Ect.Compute.ScalarConstants.MinusOne, Ect.Compute.ScalarConstants.One).to(float32).contiguous().data<float>().ToArray();
        }

        public void Dispose() => net.Dispose();
    }

    /// <summary>
    /// The class of each of <paramref name="count"/> generated images: a row per class in the sample grids (whose rows
    /// hold ceil(sqrt(count)) images, Png.SaveGrid), row r showing class r mod label_dim; an FD batch of 100 images
    /// with 10 classes holds each class 10 times.
    /// </summary>
    public static long[] GridClasses(int count, int labelDim)
    {
        int cols = Math.Max(1, (int)Math.Ceiling(Math.Sqrt(count)));
        return Enumerable.Range(0, count).Select(i => (long)(i / cols % labelDim)).ToArray();
    }

    public string WeightsDigest() => StateDigest.Compute(_net);
    public string EmaDigest() => StateDigest.Compute(_ema);

    /// <summary>SHA-256 of every power-function EMA (for exact-resume checks).</summary>
    public string PhemaDigest() => StateDigest.Compute(_phema.SelectMany((m, i) =>
        m.state_dict().Select(kv => (Edm2TrainStep.PhemaPrefix(_o.PhemaStds[i]) + "/" + kv.Key, kv.Value))));

    public void Dispose()
    {
        _step?.Dispose();
        _net.Dispose();
        _ema.Dispose();
        foreach (var m in _phema) m.Dispose();
    }
}
