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
public sealed class TorchTrainingEngine : TrainStepEngine<EctPrecond, TrainStep>, IDescribed
{
    private readonly TorchEngineOptions _options;

    public TorchTrainingEngine(TorchEngineOptions options, string scratchDir)
        : base(options.BatchSize, options.Seed, options.Threads, scratchDir, () => new EctPrecond(options.Network), options.Device)
    {
        _options = options;
        // ECT starts from the pretrained model's EMA weights, for the trained network and its EMA alike.
        if (options.InitWeights is { } init) _initSha256 = WeightsFile.ReadInitial(init, options.Network, Net, EmaNet);
        // Built and initialised on the host (the host generator gives the same initial weights on every device), then moved.
        Ect.Compute.Runtime.ModulePlacement.MoveTo(Net, options.Device.Device);
        Ect.Compute.Runtime.ModulePlacement.MoveTo(EmaNet, options.Device.Device);
        Net.Precision = options.MixedPrecision; // ect.run.mixed-precision (the EMA samples in float32)
    }

    /// <summary>The device the engine trains on (the banner and `ect ctl status` show it).</summary>
    public Ect.Compute.Runtime.ComputeDevice Device => _options.Device;

    private readonly string? _initSha256;

    public string Description
    {
        get
        {
            var n = _options.Network;
            long parameters = Net.parameters().Sum(p => p.numel());
            var kind = n.EncoderType == EncoderType.Residual ? "NCSN++" : "DDPM++";
            var attn = n.AttnResolutions.Count == 0 ? "no attention" : $"attention at {string.Join(",", n.AttnResolutions)}";
            var labels = n.LabelDim > 0 ? $", {n.LabelDim} classes" : "";
            var from = _options.InitWeights is { } init ? $"; initial weights (the teacher) {init} (sha256 {_initSha256?[..12]}...)" : "; random initial weights (EDM init)";
            return FormattableString.Invariant(
                $"{kind} (EDM SongUNet) {n.ModelChannels} ch x [{string.Join(",", n.ChannelMult)}], {n.NumBlocks} block(s)/level, {attn}, dropout {n.Dropout}{labels}, {n.ImgResolution}x{n.ImgResolution}x{n.InChannels}: {parameters:N0} parameters{from}");
        }
    }

    protected override TrainStep CreateStep(string phase, bool fromPretrain)
    {
        // ect.run.mixed-precision = fp16: the amp branch's GradScaler (its state is saved with the step's checkpoints).
        var scaler = _options.MixedPrecision.NeedsLossScaler ? new Ect.Compute.Optim.DynamicLossScaler() : null;
        if (phase == Phases.Pretrain)
            return new TrainStep(Net, EmaNet, new EdmLoss(_options.Pretrain.PMean, _options.Pretrain.PStd),
                new TrainStepConfig(_options.BatchSize, new OptimizerConfig(OptimizerKind.Adam, _options.PretrainLr), new EmaConfig(_options.EmaBeta), Seed: _options.Seed))
            { LossScaler = scaler };
        if (fromPretrain) Ema.CopyWeights(EmaNet, Net);
        var t = _options.Tuning;
        var loss = new EctLoss(new MappingFunction(t.Mapping, t.Q, t.K, t.B), t.PMean, t.PStd, c: t.C);
        return new TrainStep(Net, EmaNet, loss,
            new TrainStepConfig(_options.BatchSize, new OptimizerConfig(t.Optimizer, _options.TuningLr), new EmaConfig(_options.EmaBeta), Seed: _options.Seed + 1))
            { LossScaler = scaler };
    }

    protected override IReadOnlyDictionary<string, string> CheckpointMetadata(IReadOnlyDictionary<string, string> metadata)
    {
        var meta = CheckpointModel.DescribeNetwork(metadata, _options.Network, Phase!, EmaNet.SigmaMin, EmaNet.SigmaData, _options.DataPath);
        if (_options.InitWeights is { } init)
            meta = new Dictionary<string, string>(meta) { [CheckpointFormat.InitWeights] = init, [CheckpointFormat.InitSha256] = _initSha256! }; // provenance
        return meta;
    }

    public override IEvaluationModel CaptureEma()
    {
        var copy = new EctPrecond(_options.Network);
        Ect.Compute.Runtime.ModulePlacement.MoveTo(copy, _options.Device.Device);
        Ema.CopyWeights(EmaNet, copy);
        return new EmaEvaluationModel(copy, _options.EvaluationThreads);
    }
}
