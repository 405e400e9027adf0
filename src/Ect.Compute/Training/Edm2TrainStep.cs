using System.Diagnostics;
using Ect.Compute.Losses;
using Ect.Compute.Optim;
using Ect.Compute.Preconditioning;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ect.Compute.Training;

/// <summary>
/// Settings of <see cref="Edm2TrainStep"/>: the imgnet branch's Adam (betas 0.9/0.99, eps 1e-8) whose learning rate
/// is <see cref="InverseSqrtLearningRate"/> with ref_lr = <see cref="OptimizerConfig.LearningRate"/> and
/// ref_batches = <see cref="LrDecayBatches"/> (0 = constant); the fixed-beta EMA <see cref="EmaBeta"/>
/// (TraditionalEMA, 0.9999 in the recipe); the power-function EMAs <see cref="PhemaStds"/> (0.010, 0.050, 0.100).
/// </summary>
public sealed record Edm2TrainStepConfig(
    int BatchSize,
    OptimizerConfig Optimizer,
    long LrDecayBatches,
    double EmaBeta,
    IReadOnlyList<double> PhemaStds,
    long Seed = 0,
    double LossScaling = 1.0)
{
    public void Validate()
    {
        if (BatchSize <= 0) throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, "batch size must be > 0.");
        if (LrDecayBatches < 0) throw new ArgumentOutOfRangeException(nameof(LrDecayBatches), LrDecayBatches, "lr decay (ref_batches) must be >= 0 (0 = constant lr).");
        if (!(EmaBeta >= 0 && EmaBeta < 1)) throw new ArgumentOutOfRangeException(nameof(EmaBeta), EmaBeta, "EMA beta must be in [0, 1).");
        if (!(LossScaling > 0)) throw new ArgumentOutOfRangeException(nameof(LossScaling), LossScaling, "loss scaling must be > 0.");
        foreach (var s in PhemaStds) PowerFunctionEma.StdToExp(s); // throws with the std when outside (0, 0.2887)
        Optimizer.Validate();
    }
}

/// <summary>
/// One iteration of locuslab/ect's imgnet training loop (ct_training_loop.py) on an EDM2 network, in its order:
/// zero grads; per-sample loss (ECMLoss: the teacher pass with forced weight normalisation off and the student's
/// dropout mask, both inside the loss); <c>loss.mul(loss_scaling).mean().backward()</c>; lr = ref_lr /
/// sqrt(max(cur_nimg / (ref_batches batch), 1)) with cur_nimg counted before the step; nan_to_num(grad, 0, 0, 0);
/// Adam; cur_nimg += batch; the power-function EMAs (PowerFunctionEMA.update(cur_nimg, batch)) and the fixed-beta
/// EMA (TraditionalEMA: ema = net.lerp(ema, beta)). The same loop body is checked against the golden edm2-small
/// run by Edm2TrainingParityTests; this class is that body with the daemon's contract: a private RNG stream swapped
/// into torch's global generator for the step (noise draws and dropout masks), so the same seed, weights and images
/// give the same bits, and everything resumable through <see cref="TrainState"/> (the power-function EMAs as
/// <c>phema-STD/NAME</c>).
/// Data-parallel (<see cref="Parallel"/>, as TrainStep's): this rank's shard of the global batch, noise and dropout of
/// rank r > 0 from (seed, step, r), the loss sum divided by the global batch (the mean over all ranks), the gradients
/// summed with one all-reduce before nan_to_num and Adam; with one rank the plain mean, so `-np 1` keeps the plain bits.
/// Deviation: one accumulation round (the whole batch at once; the recipe's batch-gpu rounds each take the mean, so
/// its gradient is R times the batch mean, which Adam nearly ignores). Deviation: no redo of a non-finite step (the
/// reference has none either; the daemon's non-finite streak limit and rollback apply).
/// </summary>
public sealed class Edm2TrainStep : ITrainStep
{
    private readonly Parameter[] _params;
    private readonly StepRng _rng;

    /// <param name="net">the trained network; put in training mode.</param>
    /// <param name="ema">the fixed-beta EMA (a separate instance of the architecture); set to the net's weights now.</param>
    /// <param name="phemaNets">one instance per power-function EMA std; set to the net's weights now.</param>
    public Edm2TrainStep(Precond net, Precond ema, IReadOnlyList<Precond> phemaNets, ITrainingLoss loss, Edm2TrainStepConfig config)
    {
        ArgumentNullException.ThrowIfNull(net);
        ArgumentNullException.ThrowIfNull(ema);
        ArgumentNullException.ThrowIfNull(loss);
        config.Validate();
        if (phemaNets.Count != config.PhemaStds.Count)
            throw new ArgumentException($"{config.PhemaStds.Count} power-function EMA stds but {phemaNets.Count} networks.", nameof(phemaNets));
        if (ReferenceEquals(net, ema) || phemaNets.Any(p => ReferenceEquals(p, net) || ReferenceEquals(p, ema)))
            throw new ArgumentException("every EMA must be a separate module instance of the network's architecture.", nameof(ema));
        Net = net; EmaNet = ema; Loss = loss; Config = config;

        Net.train();
        _params = Net.parameters().ToArray();
        foreach (var p in _params) p.requires_grad = true;
        Ema.CopyWeights(Net, EmaNet);
        foreach (var m in phemaNets.Prepend(ema))
        {
            m.eval();
            foreach (var p in m.parameters()) p.requires_grad = false;
        }
        Phema = new PowerFunctionEma(Net, config.PhemaStds, phemaNets.Cast<nn.Module>().ToList());
        PhemaNets = phemaNets;
        Optimizer = OptimizerFactory.Create(config.Optimizer, _params);
        Schedule = new InverseSqrtLearningRate(config.Optimizer.LearningRate, config.LrDecayBatches);
        Stage = loss is IStagedLoss staged ? staged.Stage : 0;
        _rng = new StepRng(config.Seed);
    }

    public Precond Net { get; }
    public Precond EmaNet { get; }
    public IReadOnlyList<Precond> PhemaNets { get; }
    public PowerFunctionEma Phema { get; }
    public ITrainingLoss Loss { get; }
    public Edm2TrainStepConfig Config { get; }
    public TorchOptimizer Optimizer { get; }
    /// <summary>The learning-rate schedule; its ref_lr is <see cref="LearningRate"/>.</summary>
    public InverseSqrtLearningRate Schedule { get; private set; }

    public long StepIndex { get; private set; }
    /// <summary>Images consumed (cur_nimg).</summary>
    public long ImagesSeen { get; private set; }
    public int Stage { get; private set; }
    /// <summary>ref_lr of the schedule (what the daemon's ect.tuning.lr sets); the rate of a step is <see cref="Schedule"/> at <see cref="ImagesSeen"/>.</summary>
    public double LearningRate => Schedule.RefLr;

    /// <summary>This rank's part in a data-parallel job (null: one process trains the whole batch).</summary>
    public DataParallel? Parallel
    {
        get => _parallel;
        set
        {
            if (value is { } dp) DataParallel.CheckDivisible(Config.BatchSize, dp.Size, "the batch size");
            _parallel = value;
        }
    }
    private DataParallel? _parallel;

    /// <summary>Prefix of the power-function EMA of <paramref name="std"/> in the training state: <c>phema-0.050</c>.</summary>
    public static string PhemaPrefix(double std) => FormattableString.Invariant($"phema-{std:0.000}");

    public IReadOnlyList<(string Prefix, nn.Module Module)> ExtraModules =>
        Config.PhemaStds.Select((s, i) => (PhemaPrefix(s), (nn.Module)PhemaNets[i])).ToList();

    public void RestoreCounters(long stepIndex, long imagesSeen) { StepIndex = stepIndex; ImagesSeen = imagesSeen; }

    public Tensor GetRngState() => _rng.Get();

    public void SetRngState(Tensor state) => _rng.Set(state);

    public void SetStage(int stage)
    {
        if (stage < 0) throw new ArgumentOutOfRangeException(nameof(stage), stage, "stage must be >= 0.");
        Stage = stage;
        if (Loss is IStagedLoss s) s.Stage = stage;
    }

    /// <summary>Sets ref_lr (the schedule's base rate; the decay still applies).</summary>
    public void SetLearningRate(double lr)
    {
        if (!(lr >= 0) || double.IsInfinity(lr)) throw new ArgumentOutOfRangeException(nameof(lr), lr, "learning rate must be a finite number >= 0.");
        Schedule = Schedule with { RefLr = lr };
    }

    /// <summary>Runs one iteration on <paramref name="images"/> [BatchSize, C, H, W] with <paramref name="classLabels"/> [BatchSize, label_dim] (one-hot) or null.</summary>
    public StepStatistics Step(Tensor images, Tensor? classLabels = null)
    {
        int expected = _parallel?.ShardSize(Config.BatchSize) ?? Config.BatchSize;
        if (images.shape.Length == 0 || images.shape[0] != expected)
            throw new ArgumentException($"images has shape [{string.Join(",", images.shape)}]; expected {expected} images (the configured batch size" +
                                        (_parallel is { } p ? $" {Config.BatchSize} over {p.Size} ranks)." : ")."), nameof(images));
        var sw = Stopwatch.StartNew();
        using var scope = NewDisposeScope();
        // Rank 0 (and a plain run) draws from the step's own stream; rank r > 0 from a stream seeded by (seed, step, r).
        using var rng = _rng.Begin(_parallel, Config.Seed, StepIndex);
        Net.train();
        rng.Restart();
        Runtime.DeviceRng.Sync(images.device); // CUDA: the device stream from the step's CPU state (no-op on the CPU)
        Optimizer.ZeroGrad();
        var losses = Loss.Compute(Net, images, classLabels);
        // ct_training_loop.py: loss.mul(loss_scaling).mean().backward() (one accumulation round). Over K > 1 ranks:
        // the shard's sum over the global batch size, so the summed gradients are the whole batch's mean's.
        if (_parallel is { Size: > 1 }) losses.Times(Config.LossScaling).sum().Over((long)Config.BatchSize).backward();
        else losses.Times(Config.LossScaling).mean().backward();
        rng.End();
        (double Sum, double SumSq, double Count)? globalLoss = _parallel is { } dp ? dp.SumOverRanks(_params, losses) : null;

        double lr = Schedule.At(ImagesSeen, Config.BatchSize);
        OptimizerFactory.SetLearningRate(Optimizer, lr);
        long nonFinite = GradientCleaner.Clean(_params, GradientCleaner.ImgnetPosInf, GradientCleaner.ImgnetNegInf);
        double gradNorm = GradientCleaner.Norm(_params);
        Optimizer.Step();
        long curNimg = ImagesSeen + Config.BatchSize;
        Phema.Update(curNimg, Config.BatchSize);
        Ema.Update(Net, EmaNet, Config.EmaBeta);

        var (mean, std) = DataParallel.LossMoments(losses, _parallel, globalLoss);
        rng.Commit();
        StepIndex++;
        ImagesSeen = curNimg;
        return new StepStatistics(StepIndex, ImagesSeen, mean, std, gradNorm, 0, nonFinite, Config.EmaBeta, sw.Elapsed);
    }

    public void Dispose()
    {
        _rng.Dispose();
        Optimizer.Dispose();
    }
}
