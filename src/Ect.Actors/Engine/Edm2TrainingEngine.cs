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
    /// <summary>ect.run.device: the network, its EMA, the power-function EMAs and every step tensor live there.</summary>
    public Ect.Compute.Runtime.ComputeDevice Device { get; init; } = Ect.Compute.Runtime.ComputeDevice.Cpu;
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
public sealed class Edm2TrainingEngine : TrainStepEngine<Edm2Precond, Edm2TrainStep>, IDescribed
{
    private readonly Edm2EngineOptions _o;
    private readonly List<Edm2Precond> _phema;
    private readonly string _phemaDir;
    private readonly string? _initSha256;
    private readonly int _droppedInitTensors;
    private long _globalStep;

    public Edm2TrainingEngine(Edm2EngineOptions options, string runDir)
        // weight initialisation from the seed: MPConv weights randn, MPFourier buffers (network, EMA, then the PHEMAs)
        : base(options.BatchSize, options.Seed, options.Threads, Path.Combine(runDir, Checkpoints.Checkpointer.Folder), () => new Edm2Precond(options.Network), options.Device)
    {
        _o = options;
        _phemaDir = Path.Combine(runDir, PhemaSnapshots.Folder);
        _phema = options.PhemaStds.Select(_ => new Edm2Precond(options.Network)).ToList();
        if (options.InitWeights is { } init)
            (_initSha256, _droppedInitTensors) = LoadInitial(init, Net);
        foreach (var m in _phema.Prepend(EmaNet)) Ema.CopyWeights(Net, m);
        // Built, initialised and loaded on the host (the host generator gives the same weights on every device), then
        // moved once, as the DDPM++ engine does; the optimizer and PowerFunctionEma's weights follow the parameters.
        foreach (var m in _phema.Prepend(EmaNet).Prepend(Net)) Ect.Compute.Runtime.ModulePlacement.MoveTo(m, options.Device.Device);
    }

    /// <summary>The device the engine trains on.</summary>
    public Ect.Compute.Runtime.ComputeDevice Device => _o.Device;

    /// <summary>The power-function EMA copies, for tests that inspect where their tensors live (DevicePlacementTests).</summary>
    internal IReadOnlyList<Edm2Precond> PhemaNetsForInspection => _phema;

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
            catch (ArgumentException e)
            {
                // The default init is the shipped DDPM++ teacher: a user who only switches network.type to edm2 lands here.
                var hint = !picked.Keys.Any(k => k.StartsWith("unet.", StringComparison.Ordinal))
                    ? " The file holds no EDM2 weights (no 'unet.*' tensors; the default ect.network.init is the shipped DDPM++ teacher): set ect.network.init = \"\" to train the EDM2 network from scratch, or name EDM2 weights (docs/safetensors-export.md, \"EDM2\")."
                    : "";
                throw new InvalidDataException($"ect.network.init '{path}' does not fit the configured EDM2 network: {e.Message}{hint}", e);
            }
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
            long parameters = Net.parameters().Sum(p => p.numel());
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

    protected override Edm2TrainStep CreateStep(string phase, bool fromPretrain)
    {
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
            if (fromPretrain) Ema.CopyWeights(EmaNet, Net);
            var t = _o.Tuning;
            loss = new EctLoss(new MappingFunction(t.Mapping, t.Q, t.K, t.B), t.PMean, t.PStd, c: t.C, weighting: EctWeighting.SnrPlusK);
            (lr, seed) = (_o.TuningLr, _o.Seed + 1);
        }
        var cfg = new Edm2TrainStepConfig(_o.BatchSize, new OptimizerConfig(OptimizerKind.Adam, lr, _o.Edm2.AdamBeta1, _o.Edm2.AdamBeta2, 1e-8),
            _o.Edm2.LrDecayBatches, _o.EmaBeta, _o.PhemaStds, Seed: seed);
        return new Edm2TrainStep(Net, EmaNet, _phema.Cast<Precond>().ToList(), loss, cfg);
    }

    protected override void AfterStep(Ect.Compute.Training.StepStatistics statistics)
    {
        _globalStep++;
        if (_o.Edm2.PhemaSnapshotEvery > 0 && Phase == Phases.Tuning && _globalStep % _o.Edm2.PhemaSnapshotEvery == 0)
        {
            // On the trainer thread, atomically; a resumed run recomputes the same steps and rewrites the same bits.
            Directory.CreateDirectory(_phemaDir);
            PhemaSnapshots.Write(PhemaSnapshots.FileFor(_phemaDir, _globalStep), _globalStep, CurrentStep.ImagesSeen, _o.PhemaStds,
                _phema.Cast<nn.Module>().ToList(), CheckpointMetadata(new Dictionary<string, string> { [CheckpointFormat.Step] = _globalStep.ToString(CultureInfo.InvariantCulture) }));
        }
    }

    protected override IReadOnlyDictionary<string, string> CheckpointMetadata(IReadOnlyDictionary<string, string> metadata)
    {
        var m = new Dictionary<string, string>(metadata, StringComparer.Ordinal);
        m.TryAdd(CheckpointFormat.NetworkKind, CheckpointFormat.NetworkKindEdm2);
        m.TryAdd(CheckpointFormat.Edm2Config, SerializeConfig(_o.Network));
        m.TryAdd(CheckpointFormat.Precond, Phase == Phases.Pretrain ? "edm" : "ect");
        m.TryAdd(CheckpointFormat.SigmaData, Net.SigmaData.ToString("R", CultureInfo.InvariantCulture));
        m.TryAdd(CheckpointFormat.Phase, Phase ?? "");
        if (_o.DataPath is not null) m.TryAdd(CheckpointFormat.DataPath, _o.DataPath);
        if (_o.InitWeights is { } init) { m.TryAdd(CheckpointFormat.InitWeights, init); m.TryAdd(CheckpointFormat.InitSha256, _initSha256!); }
        return m;
    }

    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.KebabCaseLower };

    public static string SerializeConfig(Edm2UNetConfig config) => JsonSerializer.Serialize(config, Json);

    public static Edm2UNetConfig DeserializeConfig(string json) =>
        JsonSerializer.Deserialize<Edm2UNetConfig>(json, Json) ?? throw new JsonException("edm2-config is null");

    public override IReadOnlyDictionary<string, string> LoadCheckpoint(string path)
    {
        var meta = base.LoadCheckpoint(path);
        if (meta.TryGetValue(CheckpointFormat.Step, out var st) && long.TryParse(st, NumberStyles.None, CultureInfo.InvariantCulture, out var step)) _globalStep = step;
        return meta;
    }

    public override IEvaluationModel CaptureEma()
    {
        var copy = new Edm2Precond(_o.Network);
        Ema.CopyWeights(EmaNet, copy);
        return new EmaEvaluationModel(copy, _o.EvaluationThreads);
    }

    /// <summary>SHA-256 of every power-function EMA (for exact-resume checks).</summary>
    public string PhemaDigest() => StateDigest.Compute(_phema.SelectMany((m, i) =>
        m.state_dict().Select(kv => (Edm2TrainStep.PhemaPrefix(_o.PhemaStds[i]) + "/" + kv.Key, kv.Value))));

    public override void Dispose()
    {
        base.Dispose();
        foreach (var m in _phema) m.Dispose();
    }
}
