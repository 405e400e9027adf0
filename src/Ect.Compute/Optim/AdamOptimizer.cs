using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ect.Compute.Optim;

/// <summary>torch.optim.Adam (1.13, single tensor, amsgrad off).</summary>
public sealed class AdamOptimizer(IEnumerable<Parameter> parameters, OptimizerConfig config) : TorchOptimizer(parameters, config)
{
    protected override void Update(Parameter p, Tensor grad, Tensor expAvg, Tensor expAvgSq, long step)
    {
        double b1 = Config.Beta1, b2 = Config.Beta2;
        using (var beta1 = b1.ToScalar())
        using (var oneMinusBeta1 = (1 - b1).ToScalar())
            expAvg.mul_(beta1).add_(grad, alpha: oneMinusBeta1);
        using (var beta2 = b2.ToScalar())
        using (var oneMinusBeta2 = (1 - b2).ToScalar())
            expAvgSq.mul_(beta2).addcmul_(grad, grad, value: oneMinusBeta2);
        double bc1 = 1 - Math.Pow(b1, step);
        double bc2 = 1 - Math.Pow(b2, step);
        double stepSize = LearningRate / bc1;
        using var eps = Config.Eps.ToScalar();
        var denom = expAvgSq.sqrt().Over(Math.Sqrt(bc2)).add_(eps, ScalarConstants.One);
        using var minusStepSize = (-stepSize).ToScalar();
        p.addcdiv_(expAvg, denom, value: minusStepSize);
    }
}
