using Ect.Compute.Preconditioning;
using static TorchSharp.torch;

namespace Ect.Compute.Losses;

/// <summary>
/// A training loss as TrainStep uses it: draws its own noise from the global torch RNG (so dropout masks and
/// noise are reproduced by restoring one RNG state) and returns the per-sample loss [N] (float32, with grad).
/// TrainStep reduces it EDM's way: loss.sum() * loss_scaling / batch_size per accumulation round.
/// </summary>
public interface ITrainingLoss
{
    Tensor Compute(Precond net, Tensor images, Tensor? classLabels);
}

/// <summary>A loss whose behaviour depends on the ECT stage (the schedule sets it).</summary>
public interface IStagedLoss
{
    int Stage { get; set; }
}
