using Ect.Actors.Engine;
using Ect.Compute.Training;

namespace Ect.Actors.Distributed;

/// <summary>
/// What a data-parallel job needs of an engine beyond <see cref="ITrainingEngine"/> (the SongUNet engine and the EDM2
/// one): its rank's part (<see cref="Parallel"/>), its whole training state as bytes for rank 0's broadcast, and the
/// counters rank 0 sends with each step and the ranks compare.
/// </summary>
public interface IDataParallelEngine : ITrainingEngine
{
    /// <summary>This process's rank: each step trains this rank's shard and sums the gradients over the ranks.</summary>
    DataParallel? Parallel { get; set; }
    /// <summary>The phase set last (null before the first SetPhase).</summary>
    string? Phase { get; }
    int CurrentStage { get; }
    double CurrentLearningRate { get; }
    /// <summary>Steps the current phase's training step has completed (every rank counts the same).</summary>
    long StepIndex { get; }
    /// <summary>The trained network's parameters (the fault injection of the digest test perturbs one).</summary>
    IEnumerable<TorchSharp.Modules.Parameter> Parameters { get; }
    byte[] StateBytes();
    void LoadStateBytes(byte[] state, string source);
}
