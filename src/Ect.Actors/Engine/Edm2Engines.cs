using Akka.Configuration;
using Ect.Actors.Configuration;
using ConfigurationException = Ect.Actors.Configuration.ConfigurationException;
using Ect.Compute.Losses;
using Ect.Compute.Networks.Edm2;
using Ect.Compute.Optim;

namespace Ect.Actors.Engine;

/// <summary>
/// ect.network.type = edm2 (issue 14, the ImageNet-64 path): the EDM2 network and the imgnet branch's training step,
/// built from the configuration (ect.network.*, ect.tuning.*, ect.edm2.*). <see cref="Check"/> validates the edm2 keys
/// for RunSettings (one message naming every wrong key); <see cref="Create"/> is the engine factory.
/// </summary>
public static class Edm2Engines
{
    public const string NetworkType = "edm2";

    public static bool IsEdm2(Config c) => c.GetString("ect.network.type", "") == NetworkType;

    /// <summary>The EDM2 U-Net the configuration describes (channels, classes and resolution from the data set).</summary>
    public static Edm2UNetConfig NetworkConfig(Config c, int resolution, int channels, int labelDim) => new()
    {
        ImgResolution = resolution,
        ImgChannels = channels,
        LabelDim = labelDim,
        ModelChannels = c.GetInt("ect.network.model-channels"),
        ChannelMult = c.GetIntList("ect.network.channel-mult").ToList(),
        NumBlocks = c.GetInt("ect.network.num-blocks"),
        AttnResolutions = c.GetIntList("ect.network.attn-resolutions").ToList(),
        Dropout = c.GetDouble("ect.network.dropout"),
        DropoutRes = c.GetInt("ect.network.dropout-res", 0),
    };

    /// <summary>Adds a message per wrong edm2 key to <paramref name="errors"/> (only when network.type = edm2).</summary>
    public static void Check(Config c, List<string> errors)
    {
        if (!IsEdm2(c)) return;
        void Rule(bool ok, string message) { if (!ok) errors.Add(message); }
        try
        {
            Rule(c.GetInt("ect.network.dropout-res", 0) >= 0, $"ect.network.dropout-res = {c.GetInt("ect.network.dropout-res")}: must be >= 0 (0 = dropout at every level)");
            Rule(c.GetInt("ect.network.augment-dim", 0) == 0, $"ect.network.augment-dim = {c.GetInt("ect.network.augment-dim")}: EDM2 networks have no augmentation input; set it to 0");
            var betas = c.GetDoubleList("ect.edm2.adam-betas");
            Rule(betas.Count == 2 && betas.All(b => b is >= 0 and < 1), $"ect.edm2.adam-betas = [{string.Join(", ", betas)}]: two values in [0, 1), e.g. [0.9, 0.99]");
            Rule(c.GetLong("ect.edm2.lr-decay-batches") >= 0, $"ect.edm2.lr-decay-batches = {c.GetLong("ect.edm2.lr-decay-batches")}: must be >= 0 (0 = constant lr)");
            var stds = c.GetDoubleList("ect.edm2.phema-stds");
            Rule(stds.Count > 0 && stds.All(s => s is > 0 and < 0.28) && stds.Distinct().Count() == stds.Count,
                $"ect.edm2.phema-stds = [{string.Join(", ", stds)}]: a non-empty list of distinct stds in (0, 0.28), e.g. [0.010, 0.050, 0.100]");
            Rule(c.GetLong("ect.edm2.phema-snapshot-every-steps") >= 0, $"ect.edm2.phema-snapshot-every-steps = {c.GetLong("ect.edm2.phema-snapshot-every-steps")}: must be >= 0 (0 = never)");
            Rule(c.GetString("ect.tuning.optimizer") == "adam", $"ect.tuning.optimizer = {c.GetString("ect.tuning.optimizer")}: network.type = edm2 trains with Adam (the imgnet branch's); set ect.tuning.optimizer = adam");
            Rule(c.GetDouble("ect.tuning.c") > 0, $"ect.tuning.c = {c.GetDouble("ect.tuning.c")}: the imgnet branch's loss needs a Huber constant c > 0 (its default 0.06)");
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            errors.Add($"ect.network / ect.edm2: a value of network.type = edm2 is not readable ({e.Message})");
        }
    }

    public static (ITrainingEngine, IBatchSource) Create(RunSettings s, string runDir)
    {
        var c = s.Config;
        var source = new DatasetBatchSource(s.DataPath, s.BatchSize, s.Seed, c.GetInt("ect.data.resolution"), s.UseLabels,
            c.GetInt("ect.data.max-images", 0));
        if (s.UseLabels && source.LabelDim == 0)
        {
            source.Dispose();
            throw new ConfigurationException(
                $"ect.data.use-labels = on asks for a class-conditional EDM2 network, but the data set {s.DataPath} has no labels " +
                "(an EDM zip needs a dataset.json with \"labels\"; MNIST/Fashion-MNIST need their *-labels-idx1-ubyte files). " +
                "Give a data set with labels, or set ect.data.use-labels = off.");
        }
        var net = NetworkConfig(c, source.Resolution, source.Channels, s.UseLabels ? source.LabelDim : 0);
        var betas = c.GetDoubleList("ect.edm2.adam-betas");
        var o = new Edm2EngineOptions(net, s.BatchSize, s.Seed, s.Threads, s.EmaBeta, c.GetDoubleList("ect.edm2.phema-stds").ToList(),
            betas[0], betas[1], c.GetLong("ect.edm2.lr-decay-batches"),
            s.PretrainLr, c.GetDouble("ect.pretrain.p-mean"), c.GetDouble("ect.pretrain.p-std"),
            s.TuningLr, c.GetDouble("ect.tuning.p-mean"), c.GetDouble("ect.tuning.p-std"),
            c.GetString("ect.tuning.mapping") == "const" ? MappingKind.Const : MappingKind.Sigmoid,
            c.GetDouble("ect.tuning.q"), c.GetDouble("ect.tuning.k"), c.GetDouble("ect.tuning.b"), c.GetDouble("ect.tuning.c"))
        {
            DataPath = Path.GetFullPath(s.DataPath),
            InitWeights = Engines.ResolveInit(c),
            EvaluationThreads = s.EvaluationThreads,
            PhemaSnapshotEvery = c.GetLong("ect.edm2.phema-snapshot-every-steps"),
        };
        try { return (new Edm2TrainingEngine(o, runDir), source); }
        catch { source.Dispose(); throw; }
    }

    /// <summary>
    /// ect.network.init for an EDM2 run, before any work: the file must exist and be a safetensors file (its tensors are
    /// matched by name and shape when the engine loads them: an EDM2 state dict under <c>unet.*</c>, NVlabs' log-variance
    /// head dropped, or an ECT training state's <c>ema/unet.*</c>).
    /// </summary>
    public static void CheckInit(Config c)
    {
        var path = Engines.ResolveInit(c);
        if (path is null) return;
        var given = c.GetString("ect.network.init");
        if (!File.Exists(path))
            throw new ConfigurationException(
                $"ect.network.init: '{given}' does not exist (looked in {Environment.CurrentDirectory} and the folders above the ect program). " +
                "For network.type = edm2 give an EDM2 state dict in safetensors (keys unet.*; docs/safetensors-export.md), an `ect ema reconstruct` output " +
                "or an EDM2 run's checkpoint, or set ect.network.init = \"\" to start from random weights.");
        try { Ect.Compute.Training.PhemaSnapshots.ReadMetadata(path); }
        catch (InvalidDataException e) { throw new ConfigurationException($"ect.network.init: {e.Message}"); }
    }
}
