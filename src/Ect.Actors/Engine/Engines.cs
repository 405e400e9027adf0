using Ect.Actors.Configuration;
using Ect.Actors.Run;
using Ect.Compute.Losses;
using Ect.Compute.Networks;
using Ect.Compute.Optim;

namespace Ect.Actors.Engine;

/// <summary>Picks the engine named by ect.run.engine.</summary>
public static class Engines
{
    public static EngineFactory ForSettings(RunSettings settings) => settings.Engine switch
    {
        "fake" => Fake,
        // Under mpirun (Distributed/): rank 0's engine tells the other ranks what to do at each step.
        _ => Distributed.DataParallelLaunch.Current is { } launch ? launch.Rank0Factory(Torch) : Torch,
    };

    public static (ITrainingEngine, IBatchSource) Torch(RunSettings s, string runDir)
    {
        if (s.Network.IsEdm2) return Edm2Engines.Create(s, runDir); // issue 14: EDM2 network, imgnet training step
        var source = OpenData(s);
        try { return (TorchEngine(s, source.Resolution, source.Channels, s.UseLabels ? source.LabelDim : 0, Path.Combine(runDir, Checkpoints.Checkpointer.Folder)), source); }
        catch { source.Dispose(); throw; }
    }

    /// <summary>The run's data set as the trainer's batch source (ect.data.*).</summary>
    internal static DatasetBatchSource OpenData(RunSettings s) =>
        new(s.DataPath, s.BatchSize, s.Seed, s.Resolution, s.UseLabels, s.MaxImages);

    /// <summary>The torch engine for a data set of this shape (a data-parallel worker builds it without opening the data).</summary>
    public static TorchTrainingEngine TorchEngine(RunSettings s, int resolution, int channels, int labelDim, string scratchDir)
    {
        var device = Device(s);
        var o = new TorchEngineOptions(s.Network.SongUNet(resolution, channels, labelDim), s.BatchSize, s.Seed, s.Threads, s.EmaBeta,
            s.PretrainLr, s.Pretrain, s.TuningLr, s.Tuning)
        { DataPath = Path.GetFullPath(s.DataPath), InitWeights = ResolveInit(s.Network), EvaluationThreads = s.Evaluation.Threads,
          Device = device, MixedPrecision = Precision(s, device) };
        return new TorchTrainingEngine(o, scratchDir);
    }

    /// <summary>
    /// ect.run.device resolved against the libtorch this process loaded, its determinism switch applied (once per process:
    /// it must precede the first cuBLAS call); a device this build or machine lacks is a ConfigurationException naming the fix.
    /// </summary>
    public static Ect.Compute.Runtime.ComputeDevice Device(RunSettings s)
    {
        try
        {
            var device = Ect.Compute.Runtime.ComputeDevice.Resolve(s.Device);
            device.ApplyDeterminism(s.Deterministic);
            return device;
        }
        catch (ArgumentException e) { throw new ConfigurationException(e.Message); }
    }

    /// <summary>ect.run.mixed-precision, refused (ConfigurationException) where this version cannot run it.</summary>
    public static Ect.Compute.Runtime.MixedPrecision Precision(RunSettings s, Ect.Compute.Runtime.ComputeDevice device)
    {
        try
        {
            var precision = Ect.Compute.Runtime.MixedPrecision.Parse(s.MixedPrecision);
            precision.CheckDevice(device);
            return precision;
        }
        catch (ArgumentException e) { throw new ConfigurationException(e.Message); }
    }

    /// <summary>
    /// Refuses, before any work, an engine this build cannot run. <paramref name="checkInit"/> false leaves
    /// ect.network.init to the run coordinator, which checks it against the configuration the run really uses
    /// (a continued run's recorded one, not the command line's).
    /// </summary>
    public static void Check(RunSettings settings, bool checkInit = true)
    {
        if (settings.Engine != "torch") return;
        var device = Device(settings); // cuda on a CPU-only libtorch: refused here, before any work
        // Data-parallel runs on CUDA stage the gradient bucket in host memory for MPI (DataParallel.SumOverRanks), and the
        // EDM2 engine moves its network, EMA and power-function EMAs to the device: both are allowed there, not run on a
        // GPU by this project (README "GPU").
        var precision = Precision(settings, device);
        if (precision.Enabled && settings.Network.IsEdm2)
            throw new ConfigurationException($"ect.run.mixed-precision = {precision}: ect.network.type = edm2 trains in float32 only in this version; set ect.run.mixed-precision = off.");
        var res = settings.Resolution;
        var levels = settings.Network.ChannelMult.Count;
        // `ect train` has no --resolution option: the fix names the configuration key.
        try { Ect.Data.ResolutionRule.Check(res, "ect.data.resolution", levels, need => $"Set ect.data.resolution = {need} (e.g. --set ect.data.resolution={need}; images are padded or resized to it)"); }
        catch (Exception e) { throw new ConfigurationException(e.Message); }
        if (checkInit) CheckInit(InitCheckSettings.Of(settings));
    }

    /// <summary>
    /// <see cref="Check(RunSettings, bool)"/> for `ect train` on <paramref name="runDir"/>: the initial weights are checked
    /// here only for a new run directory. A run directory that may hold a run (a journal or checkpoints) is continued
    /// with its recorded configuration, not the command line's, so the run coordinator checks ect.network.init against that.
    /// </summary>
    public static void Check(RunSettings settings, string runDir)
    {
        var sqlite = settings.Config.GetString("ect.persistence.sqlite-file", "journal.db");
        bool mayHoldRun = File.Exists(Path.Combine(runDir, string.IsNullOrEmpty(sqlite) ? "journal.db" : sqlite))
            || Directory.Exists(Path.Combine(runDir, Checkpoints.Checkpointer.Folder));
        Check(settings, checkInit: !mayHoldRun);
    }

    /// <summary>
    /// The file named by ect.network.init as a full path, or null when the run starts from random weights. A relative
    /// path is looked up in the current directory, then in the folders above the program (so a checkout's
    /// `teachers/...` is found from anywhere inside it, e.g. `dotnet run` or the tests' bin folder).
    /// </summary>
    public static string? ResolveInit(NetworkSettings network)
    {
        var init = network.Init;
        if (string.IsNullOrWhiteSpace(init)) return null;
        if (Path.IsPathRooted(init) || File.Exists(init)) return Path.GetFullPath(init);
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, init);
            if (File.Exists(candidate)) return candidate;
        }
        return Path.GetFullPath(init);
    }

    /// <summary>
    /// Refuses a missing or unreadable ect.network.init, or one made for another architecture, before any work (torch
    /// engine only). The file's header decides: its network description when it has one, and its tensors' names and
    /// shapes in any case (a plain EDM state dict describes itself only by them), so the message names the key to set.
    /// </summary>
    public static void CheckInit(InitCheckSettings s)
    {
        if (s.Engine != "torch") return;
        if (s.Network.IsEdm2) { Edm2Engines.CheckInit(s.Network); return; }
        var path = ResolveInit(s.Network);
        if (path is null) return;
        var given = s.Network.Init;
        if (!File.Exists(path))
            throw new ConfigurationException(
                $"ect.network.init: '{given}' does not exist (looked in {Environment.CurrentDirectory} and the folders above the ect program). " +
                "Give an existing file (an `ect export` weights file, an ECT checkpoint or an EDM state dict in safetensors), " +
                "or set ect.network.init = \"\" to start from random weights.");
        try
        {
            var header = Checkpoints.SafetensorsFile.Open(path);
            // The dataset is not opened here: its channels and classes are taken to be the file's (the trainer's strict load checks the data).
            int channels, labels;
            bool described = header.Metadata.TryGetValue(Checkpoints.CheckpointFormat.UserPrefix + Checkpoints.CheckpointFormat.NetworkConfig, out var json);
            if (described)
            {
                var found = Checkpoints.CheckpointModel.DeserializeConfig(json!);
                (channels, labels) = (found.InChannels, found.LabelDim);
            }
            else (channels, labels) = Checkpoints.InitWeightsCheck.ImageChannelsAndLabels(header);
            var expected = s.Network.SongUNet(s.Resolution, channels, s.UseLabels ? labels : 0);
            if (described) Checkpoints.WeightsFile.CheckDescribedNetwork(path, header.Metadata, expected);
            Checkpoints.InitWeightsCheck.Check(header, expected);
        }
        catch (InvalidDataException e) { throw new ConfigurationException($"ect.network.init: {e.Message}"); }
        catch (System.Text.Json.JsonException e) { throw new ConfigurationException($"ect.network.init: '{path}' has an unreadable network description ({e.Message})."); }
    }

    public static (ITrainingEngine, IBatchSource) Fake(RunSettings s, string runDir)
    {
        var f = s.Fake;
        var engine = new FakeTrainingEngine(s.Seed, f.Parameters, s.EmaBeta, f.StepMs, f.NanAtStep, f.WriteMs, f.EvalMs);
        return (engine, new FakeBatchSource(s.Seed, s.BatchSize, width: 64));
    }
}
