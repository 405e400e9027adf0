using Ect.Actors.Checkpoints;
using Ect.Actors.Configuration;
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

/// <summary>
/// Everything the EDM2 engine needs: the network built for the data set, and the run's validated settings records
/// whole (<see cref="Edm2Engines.Create"/>). The learning rates are apart from their records because they are live keys.
/// </summary>
public sealed record Edm2EngineOptions(
    Edm2UNetConfig Network, int BatchSize, long Seed, int Threads, double EmaBeta,
    double PretrainLr, PretrainSettings Pretrain, double TuningLr, TuningSettings Tuning, Edm2Settings Edm2)
{
    public string? DataPath { get; init; }
    public string? InitWeights { get; init; }
    public int EvaluationThreads { get; init; } = 1;
    public IReadOnlyList<double> PhemaStds => Edm2.PhemaStds;
}

/// <summary>
/// The engine of ect.network.type = edm2: an <see cref="Edm2Precond"/> trained by <see cref="Edm2TrainStep"/> (the
/// imgnet branch's loop body), with the fixed-beta EMA (ect.ema.beta: sampling, evaluators, checkpoints' <c>ema/</c>) and
/// the power-function EMAs (ect.edm2.phema-stds; in checkpoints as <c>phema-STD/</c>, and every
/// ect.edm2.phema-snapshot-every-steps steps of tuning in RUN_DIR/phema/ for `ect ema reconstruct`). Tuning: ECT loss
/// with the "snr + k" weighting and Huber c (ECMLoss of the branch), Adam (ect.edm2.adam-betas), lr = ect.tuning.lr /
/// sqrt(max(images / (lr-decay-batches batch), 1)), non-finite gradients set to 0. Class labels come from the data set
/// (label_dim = its class count when ect.data.use-labels is on); the sample grids show a class per row
/// (SampleGridEvaluator asks ImageGenerator for ClassLabels.RowPerClass), fd-resnet18 labels image i with class i mod L
/// as `ect eval` does.
/// Deviation: pretraining (ect.pretrain.steps &gt; 0) uses EDM's loss (EdmLoss) with the same step, not EDM2's loss with
/// its learned log-variance weighting (ECT's copy of the network has no log-variance head; the recipe starts from an
/// EDM2 checkpoint instead). Deviation: the sample grids run the EMA in eval mode (the branch's in-training grids run
/// its EMA copies in train mode, with dropout and forced normalisation; its FID evaluation uses eval mode, as here).
/// </summary>
public sealed class Edm2TrainingEngine : ITrainingEngine, IDescribed, Distributed.IDataParallelEngine
{
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
        _scratchDir = Path.Combine(runDir, Checkpoints.Checkpointer.Folder);
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
            var prefix = state ? CheckpointFormat.StateEmaPrefix : "";
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
            loss = new EdmLoss(_o.Pretrain.PMean, _o.Pretrain.PStd);
            (lr, seed) = (_o.PretrainLr, _o.Seed);
        }
        else
        {
            // ECT starts from the pretrained model's EMA (the recipe: the EDM2 checkpoint's EMA through --transfer).
            if (fromPretrain) Ema.CopyWeights(_ema, _net);
            var t = _o.Tuning;
            loss = new EctLoss(new MappingFunction(t.Mapping, t.Q, t.K, t.B), t.PMean, t.PStd, c: t.C, weighting: EctWeighting.SnrPlusK);
            (lr, seed) = (_o.TuningLr, _o.Seed + 1);
        }
        var cfg = new Edm2TrainStepConfig(_o.BatchSize, new OptimizerConfig(OptimizerKind.Adam, lr, _o.Edm2.AdamBeta1, _o.Edm2.AdamBeta2, 1e-8),
            _o.Edm2.LrDecayBatches, _o.EmaBeta, _o.PhemaStds, Seed: seed);
        _step = new Edm2TrainStep(_net, _ema, _phema.Cast<Precond>().ToList(), loss, cfg) { Parallel = _parallel };
        _phase = phase;
    }

    // Data-parallel (Distributed/, mpirun -np K): as TorchTrainingEngine's.
    private DataParallel? _parallel;

    public DataParallel? Parallel
    {
        get => _parallel;
        set { _parallel = value; if (_step != null) _step.Parallel = value; }
    }

    public string? Phase => _phase;
    public int CurrentStage => Step_.Stage;
    public double CurrentLearningRate => Step_.LearningRate;
    public long StepIndex => Step_.StepIndex;
    public IEnumerable<TorchSharp.Modules.Parameter> Parameters => _net.parameters();
    public byte[] StateBytes() => TrainState.ToBytes(Step_);
    public void LoadStateBytes(byte[] state, string source) => TrainState.Load(state, source, Step_);

    private Edm2TrainStep Step_ => _step ?? throw new InvalidOperationException("SetPhase first");

    public void SetStage(int stage) => Step_.SetStage(stage);
    public void SetLearningRate(double lr) => Step_.SetLearningRate(lr);

    public EngineStepResult Step(Batch batch)
    {
        var b = (ImageBatch)batch.Payload;
        Ect.Compute.Training.StepStatistics s;
        if (_parallel is { } dp && b.Images.shape[0] != dp.ShardSize(_o.BatchSize))
        {
            // A whole batch (a data-parallel source assembles only the shard): this rank's rows.
            int shard = dp.ShardSize(_o.BatchSize);
            using var scope = NewDisposeScope();
            s = Step_.Step(b.Images.narrow(0, (long)dp.Rank * shard, shard), b.Labels?.narrow(0, (long)dp.Rank * shard, shard));
        }
        else s = Step_.Step(b.Images, b.Labels);
        _globalStep++;
        if (_o.Edm2.PhemaSnapshotEvery > 0 && _phase == Phases.Tuning && _globalStep % _o.Edm2.PhemaSnapshotEvery == 0)
        {
            // On the trainer thread, atomically; a resumed run recomputes the same steps and rewrites the same bits.
            Directory.CreateDirectory(_phemaDir);
            PhemaSnapshots.Write(PhemaSnapshots.FileFor(_phemaDir, _globalStep), _globalStep, Step_.ImagesSeen, _o.PhemaStds,
                _phema.Cast<nn.Module>().ToList(), Describe(new Dictionary<string, string> { [CheckpointFormat.Step] = _globalStep.ToString(CultureInfo.InvariantCulture) }));
        }
        return new EngineStepResult(s.LossMean, batch.Count);
    }

    private IReadOnlyDictionary<string, string> Describe(IReadOnlyDictionary<string, string> metadata)
    {
        var m = new Dictionary<string, string>(metadata, StringComparer.Ordinal);
        m.TryAdd(CheckpointFormat.NetworkKind, CheckpointFormat.NetworkKindEdm2);
        m.TryAdd(CheckpointFormat.Edm2Config, SerializeConfig(_o.Network));
        m.TryAdd(CheckpointFormat.Precond, _phase == Phases.Pretrain ? "edm" : "ect");
        m.TryAdd(CheckpointFormat.SigmaData, _net.SigmaData.ToString("R", CultureInfo.InvariantCulture));
        m.TryAdd(CheckpointFormat.Phase, _phase ?? "");
        if (_o.DataPath is not null) m.TryAdd(CheckpointFormat.DataPath, _o.DataPath);
        if (_o.InitWeights is { } init) { m.TryAdd(CheckpointFormat.InitWeights, init); m.TryAdd(CheckpointFormat.InitSha256, _initSha256!); }
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
        if (meta.TryGetValue(CheckpointFormat.Step, out var st) && long.TryParse(st, NumberStyles.None, CultureInfo.InvariantCulture, out var step)) _globalStep = step;
        return meta;
    }

    public IEvaluationModel CaptureEma()
    {
        var copy = new Edm2Precond(_o.Network);
        Ema.CopyWeights(_ema, copy);
        return new EmaEvaluationModel(copy, _o.EvaluationThreads);
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
