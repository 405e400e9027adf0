using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ect.Compute.Optim;

/// <summary>torch.optim.Adam (1.13, single tensor, amsgrad off).</summary>
public sealed class AdamOptimizer(IEnumerable<Parameter> parameters, OptimizerConfig config) : TorchOptimizer(parameters, config)
{
    protected override void Update(Parameter p, Tensor grad, Tensor expAvg, Tensor expAvgSq, long step)
    {
        double b1 = Config.Beta1, b2 = Config.Beta2;
        expAvg.mul_(b1).add_(grad, alpha: 1 - b1);
        expAvgSq.mul_(b2).addcmul_(grad, grad, value: 1 - b2);
        double bc1 = 1 - Math.Pow(b1, step);
        double bc2 = 1 - Math.Pow(b2, step);
        double stepSize = LearningRate / bc1;
        var denom = (expAvgSq.sqrt() / Math.Sqrt(bc2)).add_(Config.Eps);
        p.addcdiv_(expAvg, denom, value: -stepSize);
    }
}
