using Ect.Actors.Engine;
using Ect.Compute.Preconditioning;
using TorchSharp;
using static TorchSharp.torch;

namespace Ect.Actors.Evaluation;

/// <summary>
/// The EMA copy a torch engine hands the evaluators (TorchTrainingEngine and Edm2TrainingEngine alike): a network in
/// eval mode without gradients that makes images through <see cref="ImageGenerator"/> with consistency steps, as
/// `ect eval` does. Owns the network.
/// </summary>
public sealed class EmaEvaluationModel : IEvaluationModel
{
    private readonly Precond _net;
    private readonly int _threads;

    /// <param name="net">An EMA copy (not the trainer's own module): put in eval mode, gradients off.</param>
    /// <param name="threads">TorchSharp threads of the calling (evaluator) thread: ect.evaluation.threads.</param>
    public EmaEvaluationModel(Precond net, int threads)
    {
        _net = net;
        _threads = threads;
        net.eval();
        foreach (var p in net.parameters()) p.requires_grad = false;
    }

    public int Channels => _net.ImgChannels;
    public int Resolution => _net.ImgResolution;

    public float[] Generate(int count, int samplingSteps, int seed, double tMax, double midT, int firstImage = 0, ClassLabels? classes = null)
    {
        // Per calling thread (OpenMP's thread count is a per-thread setting): the evaluator's thread gets its own
        // small count instead of inheriting the trainer's, so it neither opens a second full-size OpenMP pool
        // (which throttles the trainer's for the rest of the run) nor takes both cores from training.
        torch.set_num_threads(_threads);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        // 1 and 2 steps at the evaluator's t-max and mid-t; more steps at EDM's Karras times, as `ect eval --steps N`.
        var t = SamplerChoice.EvaluatorTimes(samplingSteps, tMax, midT);
        var x = ImageGenerator.Generate(_net, new SamplerChoice.Consistency(t), count, firstImage, seed, classes);
        using var host = x.cpu(); // the evaluators read the pixels on the host (a no-op alias on the CPU)
        return host.contiguous().data<float>().ToArray();
    }

    public void Dispose() => _net.Dispose();
}
