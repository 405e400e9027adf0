using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ect.Compute.Optim;

/// <summary>
/// torch.optim.RAdam (1.13, single tensor): while rho_t &lt;= 5 (the first 5 steps with beta2 = 0.999) the step is
/// the un-adapted, bias-corrected momentum; afterwards it is rectified and adapted.
/// </summary>
public sealed class RAdamOptimizer(IEnumerable<Parameter> parameters, OptimizerConfig config) : TorchOptimizer(parameters, config)
{
    protected override void Update(Parameter p, Tensor grad, Tensor expAvg, Tensor expAvgSq, long step)
    {
        double b1 = Config.Beta1, b2 = Config.Beta2, lr = LearningRate;
        using (var beta1 = b1.ToScalar())
        using (var oneMinusBeta1 = (1 - b1).ToScalar())
            expAvg.mul_(beta1).add_(grad, alpha: oneMinusBeta1);
        using (var beta2 = b2.ToScalar())
        using (var oneMinusBeta2 = (1 - b2).ToScalar())
            expAvgSq.mul_(beta2).addcmul_(grad, grad, value: oneMinusBeta2);
        double bc1 = 1 - Math.Pow(b1, step);
        double bc2 = 1 - Math.Pow(b2, step);
        var corrected = expAvg.Over(bc1);
        double rhoInf = 2 / (1 - b2) - 1;
        double rhoT = rhoInf - 2 * step * Math.Pow(b2, step) / bc2;
        if (rhoT > 5.0)
        {
            double rect = Math.Sqrt((rhoT - 4) * (rhoT - 2) * rhoInf / ((rhoInf - 4) * (rhoInf - 2) * rhoT));
            using var eps = Config.Eps.ToScalar();
            var sq = expAvgSq.sqrt().add_(eps, ScalarConstants.One);
            var adaptive = ScalarMath.Over(Math.Sqrt(bc2), sq);
            p.add_((corrected.Times(lr) * adaptive).Times(rect), alpha: ScalarConstants.MinusOneDouble);
        }
        else
        {
            p.add_(corrected.Times(lr), alpha: ScalarConstants.MinusOneDouble);
        }
    }
}
