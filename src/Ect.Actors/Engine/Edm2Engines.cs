using Ect.Actors.Configuration;
using ConfigurationException = Ect.Actors.Configuration.ConfigurationException;

namespace Ect.Actors.Engine;

/// <summary>
/// ect.network.type = edm2 (issue 14, the ImageNet-64 path): the EDM2 network and the imgnet branch's training step,
/// built from the validated settings (RunSettings.Network, .Pretrain, .Tuning, .Edm2; RunSettings.From checks the keys).
/// <see cref="Create"/> is the engine factory.
/// </summary>
public static class Edm2Engines
{
    public const string NetworkType = NetworkSettings.Edm2;

    public static (ITrainingEngine, IBatchSource) Create(RunSettings s, string runDir)
    {
        var source = Engines.OpenData(s);
        if (s.UseLabels && source.LabelDim == 0)
        {
            source.Dispose();
            throw new ConfigurationException(
                $"ect.data.use-labels = on asks for a class-conditional EDM2 network, but the data set {s.DataPath} has no labels " +
                "(an EDM zip needs a dataset.json with \"labels\"; MNIST/Fashion-MNIST need their *-labels-idx1-ubyte files). " +
                "Give a data set with labels, or set ect.data.use-labels = off.");
        }
        var o = new Edm2EngineOptions(s.Network.Edm2UNet(source.Resolution, source.Channels, s.UseLabels ? source.LabelDim : 0),
            s.BatchSize, s.Seed, s.Threads, s.EmaBeta, s.PretrainLr, s.Pretrain, s.TuningLr, s.Tuning, s.Edm2)
        {
            DataPath = Path.GetFullPath(s.DataPath),
            InitWeights = Engines.ResolveInit(s.Network),
            EvaluationThreads = s.Evaluation.Threads,
            Device = Engines.Device(s),
        };
        try { return (new Edm2TrainingEngine(o, runDir), source); }
        catch { source.Dispose(); throw; }
    }

    /// <summary>
    /// ect.network.init for an EDM2 run, before any work: the file must exist and be a safetensors file (its tensors are
    /// matched by name and shape when the engine loads them: an EDM2 state dict under <c>unet.*</c>, NVlabs' log-variance
    /// head dropped, or an ECT training state's <c>ema/unet.*</c>).
    /// </summary>
    public static void CheckInit(NetworkSettings network)
    {
        var path = Engines.ResolveInit(network);
        if (path is null) return;
        if (!File.Exists(path))
            throw new ConfigurationException(
                $"ect.network.init: '{network.Init}' does not exist (looked in {Environment.CurrentDirectory} and the folders above the ect program). " +
                "For network.type = edm2 give an EDM2 state dict in safetensors (keys unet.*; docs/safetensors-export.md), an `ect ema reconstruct` output " +
                "or an EDM2 run's checkpoint, or set ect.network.init = \"\" to start from random weights.");
        try { Ect.Compute.Training.PhemaSnapshots.ReadMetadata(path); }
        catch (InvalidDataException e) { throw new ConfigurationException($"ect.network.init: {e.Message}"); }
    }
}
