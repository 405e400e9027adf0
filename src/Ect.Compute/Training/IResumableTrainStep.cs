using Ect.Compute.Optim;
using Ect.Compute.Preconditioning;
using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Compute.Training;

/// <summary>
/// What <see cref="TrainState"/> saves and restores of a training step: the network, its EMA, any further averaged
/// copies (<see cref="ExtraModules"/>, e.g. the power-function EMAs of <see cref="Edm2TrainStep"/>), the optimizer,
/// the step's private RNG stream, the counters, the stage and the learning rate.
/// </summary>
public interface IResumableTrainStep
{
    Precond Net { get; }
    Precond EmaNet { get; }
    TorchOptimizer Optimizer { get; }
    long StepIndex { get; }
    long ImagesSeen { get; }
    int Stage { get; }
    double LearningRate { get; }

    /// <summary>Further modules saved as <c>PREFIX/NAME</c> tensors (prefix without the slash); none for <see cref="TrainStep"/>.</summary>
    IReadOnlyList<(string Prefix, nn.Module Module)> ExtraModules { get; }

    Tensor GetRngState();
    void SetRngState(Tensor state);
    void SetStage(int stage);
    void SetLearningRate(double lr);

    /// <summary>The fp16 loss scaler whose state is saved with the step (ect.run.mixed-precision = fp16); null otherwise.</summary>
    DynamicLossScaler? LossScaler => null;

    /// <summary>Restores the step and image counters (resume).</summary>
    void RestoreCounters(long stepIndex, long imagesSeen);
}
