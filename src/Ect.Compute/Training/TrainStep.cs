using System.Diagnostics;
using Ect.Compute.Losses;
using Ect.Compute.Optim;
using Ect.Compute.Preconditioning;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ect.Compute.Training;

/// <summary>
/// One training iteration as the reference loop does it: zero grads; per accumulation round forward + backward of
/// loss.sum() * loss_scaling / batch_size; sanitise gradients (nan 0, +-inf +-1e5); optimizer step; EMA update.
/// The step owns its RNG stream (seeded by the config), swapped into torch's global generator for the duration of a
/// step, so the same seed, config, weights and images give bit-identical results whatever else uses the global RNG.
/// </summary>
public sealed class TrainStep : ITrainStep
{
    private readonly Parameter[] _params;
    private readonly StepRng _rng;

    /// <param name="net">the trained network; put in training mode.</param>
    /// <param name="ema">a second instance of the same architecture; receives a deep copy of the weights, eval mode, no grad.</param>
    public TrainStep(Precond net, Precond ema, ITrainingLoss loss, TrainStepConfig config)
    {
        ArgumentNullException.ThrowIfNull(net);
        ArgumentNullException.ThrowIfNull(ema);
        ArgumentNullException.ThrowIfNull(loss);
        config.Validate();
        if (ReferenceEquals(net, ema)) throw new ArgumentException("the EMA must be a separate module instance of the network's architecture.", nameof(ema));
        Net = net; EmaNet = ema; Loss = loss; Config = config;

        Net.train();
        _params = Net.parameters().ToArray();
        foreach (var p in _params) p.requires_grad = true;
        Ema.CopyWeights(Net, EmaNet);
        EmaNet.eval();
        foreach (var p in EmaNet.parameters()) p.requires_grad = false;
        Optimizer = OptimizerFactory.Create(config.Optimizer, _params);
        LearningRate = config.Optimizer.LearningRate;
        Stage = loss is IStagedLoss staged ? staged.Stage : 0;
        _rng = new StepRng(config.Seed);
    }

    public Precond Net { get; }
    public Precond EmaNet { get; }
    public ITrainingLoss Loss { get; }
    public TrainStepConfig Config { get; }
    public TorchOptimizer Optimizer { get; }

    /// <summary>Steps completed.</summary>
    public long StepIndex { get; internal set; }
    /// <summary>Images consumed (cur_nimg).</summary>
    public long ImagesSeen { get; internal set; }
    public int Stage { get; private set; }
    public double LearningRate { get; private set; }

    /// <summary>None: the network and its EMA are all the modules of this step.</summary>
    public IReadOnlyList<(string Prefix, nn.Module Module)> ExtraModules => [];

    public void RestoreCounters(long stepIndex, long imagesSeen) { StepIndex = stepIndex; ImagesSeen = imagesSeen; }

    /// <summary>
    /// ect.run.mixed-precision = fp16: the dynamic loss scaler (its scale replaces <see cref="TrainStepConfig.LossScaling"/>;
    /// a step with inf/NaN gradients is skipped). Null (default): the float32 path, bit for bit as before.
    /// </summary>
    public DynamicLossScaler? LossScaler { get; set; }

    /// <summary>
    /// This rank's part in a data-parallel job (null: one process trains the whole batch). Step then takes this rank's
    /// shard of the batch and sums the gradients over all ranks (one all-reduce of a flat buffer) before the update.
    /// </summary>
    public DataParallel? Parallel
    {
        get => _parallel;
        set
        {
            if (value is { } dp)
            {
                DataParallel.CheckDivisible(Config.BatchSize, dp.Size, "the batch size");
                if (dp.ShardSize(Config.BatchSize) % Config.AccumulationRounds != 0)
                    throw new ArgumentException($"a shard of {dp.ShardSize(Config.BatchSize)} images (batch {Config.BatchSize} over {dp.Size} ranks) cannot be split into {Config.AccumulationRounds} accumulation rounds.");
            }
            _parallel = value;
        }
    }
    private DataParallel? _parallel;

    /// <summary>A copy of the step's RNG state (torch generator state bytes).</summary>
    public Tensor GetRngState() => _rng.Get();

    /// <summary>Replaces the step's RNG state (resume).</summary>
    public void SetRngState(Tensor state) => _rng.Set(state);

    /// <summary>Sets the ECT stage (no-op for losses without one, but remembered for the saved state).</summary>
    public void SetStage(int stage)
    {
        if (stage < 0) throw new ArgumentOutOfRangeException(nameof(stage), stage, "stage must be >= 0.");
        Stage = stage;
        if (Loss is IStagedLoss s) s.Stage = stage;
    }

    public void SetLearningRate(double lr)
    {
        OptimizerFactory.SetLearningRate(Optimizer, lr);
        LearningRate = lr;
    }

    /// <summary>
    /// Runs one step on <paramref name="images"/> [BatchSize, C, H, W] (float32 in [-1, 1]); with <see cref="Parallel"/>,
    /// on this rank's shard [BatchSize / K, C, H, W] of the global batch.
    /// </summary>
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
        int redo = 0;
        Tensor losses;
        while (true)
        {
            // Every attempt starts from the step's RNG state: a redo repeats the same noise and dropout masks.
            rng.Restart();
            Runtime.DeviceRng.Sync(images.device); // CUDA: the device stream from the step's CPU state (no-op on the CPU)
            Optimizer.ZeroGrad();
            losses = RunRounds(images, classLabels);
            // With a loss scaler, inf/NaN gradients are its business (skip and back off), not a redo's: a redo would
            // repeat the same overflow at the same scale.
            bool finite = losses.isfinite().all().item<bool>() && (LossScaler is not null || GradientCleaner.AllFinite(_params));
            if (finite || redo >= Config.MaxRedo) break;
            redo++;
        }
        rng.End();
        (double Sum, double SumSq, double Count)? globalLoss = _parallel is { } dp ? dp.SumOverRanks(_params, losses) : null;

        double lossScale = LossScaler?.Scale ?? Config.LossScaling;
        // After the all-reduce every rank holds the same gradients, so every rank takes the same skip decision.
        bool skipped = LossScaler is { } scaler && !scaler.UnscaleAndCheck(_params);
        long nonFinite = GradientCleaner.Clean(_params);
        double gradNorm = GradientCleaner.Norm(_params);
        double beta = Config.Ema.BetaAt(ImagesSeen, Config.BatchSize);
        if (!skipped)
        {
            Optimizer.Step();
            Ema.Update(Net, EmaNet, beta);
        }
        LossScaler?.Update(skipped);

        var (mean, std) = DataParallel.LossMoments(losses, _parallel, globalLoss);
        rng.Commit();
        StepIndex++;
        ImagesSeen += Config.BatchSize;
        return new StepStatistics(StepIndex, ImagesSeen, mean, std, gradNorm, redo, nonFinite, beta, sw.Elapsed, skipped, lossScale);
    }

    private Tensor RunRounds(Tensor images, Tensor? classLabels)
    {
        int rounds = Config.AccumulationRounds;
        long per = images.shape[0] / rounds;
        var all = new List<Tensor>(rounds);
        for (int r = 0; r < rounds; r++)
        {
            using var roundScope = NewDisposeScope();
            var x = rounds == 1 ? images : images.narrow(0, r * per, per);
            var c = classLabels is null ? null : rounds == 1 ? classLabels : classLabels.narrow(0, r * per, per);
            var loss = Loss.Compute(Net, x, c);
            // EDM: loss.sum().mul(loss_scaling / batch_gpu_total).backward(). (The ECT loop uses
            // loss.mul(loss_scaling).mean() per round, which is the same for one round and rounds-times larger
            // otherwise; we keep EDM's form so the gradient does not depend on the split.)
            // fp16: the loss scaler's scale in place of loss_scaling (the amp branch: "Loss scaling is overwritten when
            // GradScaler is enabled"); UnscaleAndCheck divides it out again.
            loss.sum().Times((LossScaler?.Scale ?? Config.LossScaling) / Config.BatchSize).backward();
            all.Add(loss.detach().MoveToOuterDisposeScope());
        }
        return rounds == 1 ? all[0] : cat(all, 0);
    }

    public void Dispose()
    {
        _rng.Dispose();
        Optimizer.Dispose();
    }
}
