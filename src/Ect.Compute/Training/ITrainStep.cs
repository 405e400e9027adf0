using static TorchSharp.torch;

namespace Ect.Compute.Training;

/// <summary>
/// A training step as the daemon's engines drive it (<see cref="TrainStep"/>, <see cref="Edm2TrainStep"/>): resumable,
/// data-parallel when given a rank, one optimizer update per <see cref="Step"/>.
/// </summary>
public interface ITrainStep : IResumableTrainStep, IDisposable
{
    /// <summary>This rank's part in a data-parallel job (null: one process trains the whole batch).</summary>
    DataParallel? Parallel { get; set; }

    /// <summary>One iteration on the batch (with <see cref="Parallel"/>, on this rank's shard of it).</summary>
    StepStatistics Step(Tensor images, Tensor? classLabels = null);
}
