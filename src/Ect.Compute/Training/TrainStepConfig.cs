using Ect.Compute.Optim;

namespace Ect.Compute.Training;

/// <summary>
/// Settings of one optimisation step. <see cref="BatchSize"/> images per step, split into
/// <see cref="AccumulationRounds"/> equal rounds (EDM's batch_gpu); <see cref="Seed"/> seeds TrainStep's own RNG
/// stream (noise draws and dropout masks); a non-finite loss or gradient is recomputed from the same RNG state up to
/// <see cref="MaxRedo"/> times before the step goes on with sanitised gradients (as the reference would).
/// </summary>
public sealed record TrainStepConfig(
    int BatchSize,
    OptimizerConfig Optimizer,
    EmaConfig Ema,
    int AccumulationRounds = 1,
    long Seed = 0,
    int MaxRedo = 2,
    double LossScaling = 1.0)
{
    public void Validate()
    {
        if (BatchSize <= 0) throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, "batch size must be > 0.");
        if (AccumulationRounds <= 0 || BatchSize % AccumulationRounds != 0)
            throw new ArgumentOutOfRangeException(nameof(AccumulationRounds), AccumulationRounds, $"accumulation rounds must divide the batch size {BatchSize}.");
        if (MaxRedo < 0) throw new ArgumentOutOfRangeException(nameof(MaxRedo), MaxRedo, "MaxRedo must be >= 0.");
        if (!(LossScaling > 0)) throw new ArgumentOutOfRangeException(nameof(LossScaling), LossScaling, "loss scaling must be > 0.");
        Optimizer.Validate();
    }
}

/// <summary>
/// What one step did. <see cref="Step"/>: steps completed including this one; <see cref="ImagesSeen"/>: images
/// consumed including this step's; <see cref="LossMean"/>/<see cref="LossStd"/>: mean and population std of the
/// per-sample losses of the accepted attempt; <see cref="GradNorm"/>: L2 norm of all gradients after sanitising;
/// <see cref="RedoCount"/>: attempts recomputed because of a non-finite loss/gradient;
/// <see cref="NonFiniteGradients"/>: entries the GradientCleaner replaced in the accepted attempt;
/// <see cref="SkippedByLossScaler"/>: fp16's loss scaler found inf/NaN gradients, so neither weights nor EMA moved;
/// <see cref="LossScale"/>: the scale the step's loss was multiplied by (the loss scaler's, else the configured one).
/// </summary>
public sealed record StepStatistics(
    long Step,
    long ImagesSeen,
    double LossMean,
    double LossStd,
    double GradNorm,
    int RedoCount,
    long NonFiniteGradients,
    double EmaBeta,
    TimeSpan Duration,
    bool SkippedByLossScaler = false,
    double LossScale = 1);
