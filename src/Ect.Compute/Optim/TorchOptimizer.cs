using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Ect.Compute.Optim;

/// <summary>
/// Adam / RAdam written out with PyTorch 1.13's single-tensor arithmetic (torch/optim/adam.py, radam.py), op for
/// op, so results agree with the reference runs. (TorchSharp's own RAdam differs from torch 1.13 in the rectified
/// phase by ~1e-4 relative per step on the golden run, so it is not used.) The state (moments and step counters)
/// is exposed as named tensors for TrainState.
/// </summary>
public abstract class TorchOptimizer : IDisposable
{
    protected readonly Parameter[] Params;
    protected readonly Tensor[] ExpAvg;
    protected readonly Tensor[] ExpAvgSq;

    protected TorchOptimizer(IEnumerable<Parameter> parameters, OptimizerConfig config)
    {
        config.Validate();
        Config = config;
        LearningRate = config.LearningRate;
        Params = parameters.ToArray();
        using var noGrad = no_grad();
        ExpAvg = Params.Select(p => zeros_like(p).DetachFromDisposeScope()).ToArray();
        ExpAvgSq = Params.Select(p => zeros_like(p).DetachFromDisposeScope()).ToArray();
    }

    public OptimizerConfig Config { get; }
    public double LearningRate { get; set; }

    /// <summary>Optimizer steps taken (PyTorch keeps one counter per parameter; they always move together here).</summary>
    public long StepCount { get; private set; }

    /// <summary>Zeroes every parameter's gradient (numerically the same as PyTorch's set_to_none before accumulation).</summary>
    public void ZeroGrad()
    {
        foreach (var p in Params) p.grad?.zero_();
    }

    /// <summary>One update of every parameter that has a gradient.</summary>
    public void Step()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        StepCount++;
        for (int i = 0; i < Params.Length; i++)
        {
            var g = Params[i].grad;
            if (g is null) continue;
            if (Config.WeightDecay != 0)
            {
                using var weightDecay = Config.WeightDecay.ToScalar();
                g = g.add(Params[i], alpha: weightDecay);
            }
            Update(Params[i], g, ExpAvg[i], ExpAvgSq[i], StepCount);
        }
    }

    protected abstract void Update(Parameter p, Tensor grad, Tensor expAvg, Tensor expAvgSq, long step);

    /// <summary>The state as named tensors: <c>exp_avg/i</c>, <c>exp_avg_sq/i</c> (i = parameter index), <c>step</c> (int64).</summary>
    public Dictionary<string, Tensor> StateTensors()
    {
        var d = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        for (int i = 0; i < Params.Length; i++)
        {
            d[$"exp_avg/{i}"] = ExpAvg[i];
            d[$"exp_avg_sq/{i}"] = ExpAvgSq[i];
        }
        d["step"] = tensor(StepCount);
        return d;
    }

    /// <summary>Restores the state written by <see cref="StateTensors"/>; <paramref name="get"/> returns null for a missing name.</summary>
    public void LoadState(Func<string, Tensor?> get, string source)
    {
        using var noGrad = no_grad();
        for (int i = 0; i < Params.Length; i++)
        {
            Copy(get, $"exp_avg/{i}", ExpAvg[i], source);
            Copy(get, $"exp_avg_sq/{i}", ExpAvgSq[i], source);
        }
        var step = get("step") ?? throw new InvalidDataException($"'{source}': optimizer state has no 'step'.");
        StepCount = step.item<long>();
    }

    private static void Copy(Func<string, Tensor?> get, string name, Tensor dst, string source)
    {
        var src = get(name) ?? throw new InvalidDataException($"'{source}': optimizer state has no '{name}' (different network?).");
        if (!src.shape.SequenceEqual(dst.shape))
            throw new InvalidDataException($"'{source}': optimizer '{name}' has shape [{string.Join(",", src.shape)}], expected [{string.Join(",", dst.shape)}].");
        dst.copy_(src);
    }

    public void Dispose()
    {
        foreach (var t in ExpAvg.Concat(ExpAvgSq)) t.Dispose();
    }
}
