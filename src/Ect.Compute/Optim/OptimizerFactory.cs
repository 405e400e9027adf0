using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ect.Compute.Optim;

public enum OptimizerKind { RAdam, Adam }

/// <summary>Optimizer settings (ECT CIFAR-10: RAdam lr 1e-4; EDM: Adam lr 1e-3; betas 0.9/0.999, eps 1e-8).</summary>
public sealed record OptimizerConfig(
    OptimizerKind Kind = OptimizerKind.RAdam,
    double LearningRate = 1e-4,
    double Beta1 = 0.9,
    double Beta2 = 0.999,
    double Eps = 1e-8,
    double WeightDecay = 0.0)
{
    public void Validate()
    {
        if (!(LearningRate >= 0) || double.IsInfinity(LearningRate)) throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "learning rate must be a finite number >= 0.");
        if (!(Beta1 >= 0 && Beta1 < 1)) throw new ArgumentOutOfRangeException(nameof(Beta1), Beta1, "beta1 must be in [0, 1).");
        if (!(Beta2 >= 0 && Beta2 < 1)) throw new ArgumentOutOfRangeException(nameof(Beta2), Beta2, "beta2 must be in [0, 1).");
        if (!(Eps >= 0)) throw new ArgumentOutOfRangeException(nameof(Eps), Eps, "eps must be >= 0.");
        if (!(WeightDecay >= 0)) throw new ArgumentOutOfRangeException(nameof(WeightDecay), WeightDecay, "weight decay must be >= 0.");
    }
}

/// <summary>Builds the optimizer named by the config (PyTorch 1.13 semantics, see <see cref="TorchOptimizer"/>).</summary>
public static class OptimizerFactory
{
    public static TorchOptimizer Create(OptimizerConfig config, IEnumerable<Parameter> parameters)
    {
        config.Validate();
        return config.Kind switch
        {
            OptimizerKind.RAdam => new RAdamOptimizer(parameters, config),
            OptimizerKind.Adam => new AdamOptimizer(parameters, config),
            _ => throw new ArgumentOutOfRangeException(nameof(config), config.Kind, "unknown optimizer kind"),
        };
    }

    /// <summary>Sets the learning rate (the daemon's ramp-up / schedule).</summary>
    public static void SetLearningRate(TorchOptimizer optimizer, double lr)
    {
        if (!(lr >= 0) || double.IsInfinity(lr)) throw new ArgumentOutOfRangeException(nameof(lr), lr, "learning rate must be a finite number >= 0.");
        optimizer.LearningRate = lr;
    }
}
