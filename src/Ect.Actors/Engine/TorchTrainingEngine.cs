using Ect.Actors.Evaluation;
using Ect.Compute.Losses;
using Ect.Compute.Networks;
using Ect.Compute.Optim;
using Ect.Compute.Preconditioning;
using Ect.Compute.Sampling;
using Ect.Compute.Training;
using Ect.Data;
using TorchSharp;
using static TorchSharp.torch;
using Ect.Actors.Checkpoints;
using Ect.Actors.Configuration;

namespace Ect.Actors.Engine;

/// <summary>
/// Everything the real engine needs: the network built for the data set and the run's validated pretraining and tuning
/// records whole (Engines.TorchEngine). The learning rates are apart from their records because they are live keys.
/// </summary>
public sealed record TorchEngineOptions(
    SongUNetConfig Network, int BatchSize, long Seed, int Threads, double EmaBeta,
    double PretrainLr, PretrainSettings Pretrain, double TuningLr, TuningSettings Tuning)
{
    /// <summary>The dataset the run trains on; recorded in checkpoints (metadata data-path) so `ect eval` can find its reference.</summary>
    public string? DataPath { get; init; }

    /// <summary>
    /// Weights both the network and its EMA start from (ect.network.init: the teacher), or null for EDM's random
    /// initialisation. Used at a fresh start only; a resumed run loads its checkpoint over them.
    /// </summary>
    public string? InitWeights { get; init; }

    /// <summary>TorchSharp threads of EMA sampling on an evaluator's thread (ect.evaluation.threads).</summary>
    public int EvaluationThreads { get; init; } = 1;

    /// <summary>ect.run.device, resolved (Engines.Device): the network, EMA, optimizer state and every batch live there.</summary>
    public Ect.Compute.Runtime.ComputeDevice Device { get; init; } = Ect.Compute.Runtime.ComputeDevice.Cpu;

    /// <summary>ect.run.mixed-precision (off: float32 everywhere, the default).</summary>
    public Ect.Compute.Runtime.MixedPrecision MixedPrecision { get; init; } = Ect.Compute.Runtime.MixedPrecision.Off;
}

/// <summary>
/// The real engine: an EctPrecond SongUNet trained by Ect.Compute's TrainStep. Pretraining: EDM loss, Adam.
/// Tuning (ECT): starts from the pretrained EMA weights (as the reference starts from EDM's EMA snapshot), ECT
/// loss, RAdam by default, a fresh optimizer and the step RNG seeded with seed + 1. One network instance serves
/// both phases (EctPrecond's training mode equals EDM's, same state-dict keys). Checkpoints: TrainState's one
/// safetensors file, written by Capture on the trainer thread to a scratch file in the checkpoint folder, then
/// moved into place by the checkpointer (a rename).
/// </summary>
public sealed class TorchTrainingEngine : ITrainingEngine, IDescribed, Distributed.IDataParallelEngine
{
    private readonly TorchEngineOptions _options;
    private readonly EctPrecond _net, _ema;
    private readonly string _scratchDir;
    private TrainStep? _step;
    private string? _phase;

    public TorchTrainingEngine(TorchEngineOptions options, string scratchDir)
    {
        _options = options;
        _scratchDir = scratchDir;
        Directory.CreateDirectory(scratchDir);
        Ect.Compute.Runtime.LibTorchBackends.Configure(); // no NNPACK: its "Unsupported hardware" line per convolution
        torch.set_num_threads(options.Threads);
        torch.random.manual_seed(options.Seed); // weight initialisation
        _net = new EctPrecond(options.Network);
        _ema = new EctPrecond(options.Network);
        // ECT starts from the pretrained model's EMA weights, for the trained network and its EMA alike.
        if (options.InitWeights is { } init) _initSha256 = WeightsFile.ReadInitial(init, options.Network, _net, _ema);
        // Built and initialised on the host (the host generator gives the same initial weights on every device), then moved.
        Ect.Compute.Runtime.ModulePlacement.MoveTo(_net, options.Device.Device);
        Ect.Compute.Runtime.ModulePlacement.MoveTo(_ema, options.Device.Device);
        _net.Precision = options.MixedPrecision; // ect.run.mixed-precision (the EMA samples in float32)
    }

    /// <summary>The device the engine trains on (the banner and `ect ctl status` show it).</summary>
    public Ect.Compute.Runtime.ComputeDevice Device => _options.Device;

    private readonly string? _initSha256;

    public string Description
    {
        get
        {
            var n = _options.Network;
            long parameters = _net.parameters().Sum(p => p.numel());
            var kind = n.EncoderType == EncoderType.Residual ? "NCSN++" : "DDPM++";
            var attn = n.AttnResolutions.Count == 0 ? "no attention" : $"attention at {string.Join(",", n.AttnResolutions)}";
            var labels = n.LabelDim > 0 ? $", {n.LabelDim} classes" : "";
            var from = _options.InitWeights is { } init ? $"; initial weights (the teacher) {init} (sha256 {_initSha256?[..12]}...)" : "; random initial weights (EDM init)";
            return FormattableString.Invariant(
                $"{kind} (EDM SongUNet) {n.ModelChannels} ch x [{string.Join(",", n.ChannelMult)}], {n.NumBlocks} block(s)/level, {attn}, dropout {n.Dropout}{labels}, {n.ImgResolution}x{n.ImgResolution}x{n.InChannels}: {parameters:N0} parameters{from}");
        }
    }

    public void SetPhase(string phase)
    {
        if (phase == _phase) return;
        var fromPretrain = _phase == Phases.Pretrain && _step != null;
        _step?.Dispose();
        if (phase == Phases.Pretrain)
        {
            _step = new TrainStep(_net, _ema, new EdmLoss(_options.Pretrain.PMean, _options.Pretrain.PStd),
                new TrainStepConfig(_options.BatchSize, new OptimizerConfig(OptimizerKind.Adam, _options.PretrainLr), new EmaConfig(_options.EmaBeta), Seed: _options.Seed));
        }
        else
        {
            if (fromPretrain) Ema.CopyWeights(_ema, _net);
            var t = _options.Tuning;
            var loss = new EctLoss(new MappingFunction(t.Mapping, t.Q, t.K, t.B), t.PMean, t.PStd, c: t.C);
            _step = new TrainStep(_net, _ema, loss,
                new TrainStepConfig(_options.BatchSize, new OptimizerConfig(t.Optimizer, _options.TuningLr), new EmaConfig(_options.EmaBeta), Seed: _options.Seed + 1));
        }
        _step.Parallel = _parallel;
        _phase = phase;
    }

    private DataParallel? _parallel;

    /// <summary>
    /// This process's rank in a data-parallel job (Distributed/): each step trains this rank's shard of the batch and
    /// sums the gradients over the ranks. Null: the whole batch, as one process.
    /// </summary>
    public DataParallel? Parallel
    {
        get => _parallel;
        set { _parallel = value; if (_step != null) _step.Parallel = value; }
    }

    /// <summary>The trained network's parameters (not the EMA's).</summary>
    public IEnumerable<TorchSharp.Modules.Parameter> Parameters => _net.parameters();

    /// <summary>The phase set last (null before the first <see cref="SetPhase"/>).</summary>
    public string? Phase => _phase;

    /// <summary>The stage and learning rate in effect (set, or restored by a checkpoint load).</summary>
    public int CurrentStage => CurrentTrainStep.Stage;
    public double CurrentLearningRate => CurrentTrainStep.LearningRate;

    /// <summary>Steps the current phase's TrainStep has completed (restored by a checkpoint load).</summary>
    public long StepIndex => CurrentTrainStep.StepIndex;

    /// <summary>The whole training state as bytes (weights, EMA, optimizer, RNG, counters): rank 0 broadcasts it so every rank starts identical.</summary>
    public byte[] StateBytes() => TrainState.ToBytes(CurrentTrainStep);

    /// <summary>Restores the state <see cref="StateBytes"/> gave (after <see cref="SetPhase"/> with the sender's phase).</summary>
    public void LoadStateBytes(byte[] state, string source) => TrainState.Load(state, source, CurrentTrainStep);

    private TrainStep CurrentTrainStep => _step ?? throw new InvalidOperationException("SetPhase first");

    public void SetStage(int stage) => CurrentTrainStep.SetStage(stage);
    public void SetLearningRate(double lr) => CurrentTrainStep.SetLearningRate(lr);

    public EngineStepResult Step(Batch batch)
    {
        var b = (ImageBatch)batch.Payload;
        // The batch is assembled on the host; on another device it is copied there (the CPU path makes no copy).
        using var deviceScope = _options.Device.IsCpu ? null : NewDisposeScope();
        var images = _options.Device.IsCpu ? b.Images : b.Images.to(_options.Device.Device);
        var labels = _options.Device.IsCpu ? b.Labels : b.Labels?.to(_options.Device.Device);
        if (_parallel is { } dp)
        {
            // This rank's shard of the global batch: images [rank * B/K, (rank + 1) * B/K). A data-parallel source
            // (DatasetBatchSource.Shard) assembles only those; a whole batch is cut here.
            int shard = dp.ShardSize(_options.BatchSize);
            using var scope = NewDisposeScope();
            bool whole = images.shape[0] != shard;
            var x = whole ? images.narrow(0, (long)dp.Rank * shard, shard) : images;
            var c = whole ? labels?.narrow(0, (long)dp.Rank * shard, shard) : labels;
            var ds = CurrentTrainStep.Step(x, c);
            return new EngineStepResult(ds.LossMean, batch.Count);
        }
        var s = CurrentTrainStep.Step(images, labels);
        return new EngineStepResult(s.LossMean, batch.Count);
    }

    public ICheckpointImage Capture(IReadOnlyDictionary<string, string> metadata)
    {
        var path = Path.Combine(_scratchDir, $".capture-{Guid.NewGuid():N}");
        var meta = CheckpointModel.DescribeNetwork(metadata, _options.Network, _phase!, _ema.SigmaMin, _ema.SigmaData, _options.DataPath);
        if (_options.InitWeights is { } init)
            meta = new Dictionary<string, string>(meta) { [CheckpointFormat.InitWeights] = init, [CheckpointFormat.InitSha256] = _initSha256! }; // provenance
        TrainState.Save(path, CurrentTrainStep, meta);
        return new CapturedFile(path);
    }

    private sealed class CapturedFile(string path) : ICheckpointImage
    {
        private bool _moved;
        public void WriteTo(string target) { File.Move(path, target, overwrite: true); _moved = true; }
        public void Dispose() { if (!_moved) try { File.Delete(path); } catch (IOException) { } }
    }

    public IReadOnlyDictionary<string, string> LoadCheckpoint(string path) => TrainState.Load(path, CurrentTrainStep);

    public IEvaluationModel CaptureEma()
    {
        var copy = new EctPrecond(_options.Network);
        Ect.Compute.Runtime.ModulePlacement.MoveTo(copy, _options.Device.Device);
        Ema.CopyWeights(_ema, copy);
        return new EmaEvaluationModel(copy, _options.EvaluationThreads);
    }

    public string WeightsDigest() => StateDigest.Compute(_net);
    public string EmaDigest() => StateDigest.Compute(_ema);

    public void Dispose()
    {
        _step?.Dispose();
        _net.Dispose();
        _ema.Dispose();
    }
}
