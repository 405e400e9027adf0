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
        var c = s.Config;
        if (Edm2Engines.IsEdm2(c)) return Edm2Engines.Create(s, runDir); // issue 14: EDM2 network, imgnet training step
        var source = new DatasetBatchSource(s.DataPath, s.BatchSize, s.Seed, c.GetInt("ect.data.resolution"), s.UseLabels,
            c.GetInt("ect.data.max-images", 0));
        return (TorchEngine(s, source.Resolution, source.Channels, s.UseLabels ? source.LabelDim : 0, Path.Combine(runDir, Run.Checkpointer.Folder)), source);
    }

    /// <summary>The torch engine for a data set of this shape.</summary>
    public static TorchTrainingEngine TorchEngine(RunSettings s, int resolution, int channels, int labelDim, string scratchDir)
    {
        var c = s.Config;
        var net = NetworkConfig(c, resolution, channels, labelDim);
        var (p, t) = (s.Pretrain, s.Tuning); // validated by RunSettings.From
        var o = new TorchEngineOptions(net, s.BatchSize, s.Seed, s.Threads, s.EmaBeta,
            s.PretrainLr, p.PMean, p.PStd, s.TuningLr, t.Optimizer, t.PMean, t.PStd, t.Mapping, t.Q, t.K, t.B, t.C)
        { DataPath = Path.GetFullPath(s.DataPath), InitWeights = ResolveInit(c), EvaluationThreads = s.EvaluationThreads };
        return new TorchTrainingEngine(o, scratchDir);
    }

    public static SongUNetConfig NetworkConfig(Akka.Configuration.Config c, int resolution, int channels, int labelDim)
    {
        var mult = c.GetIntList("ect.network.channel-mult").ToList();
        var attn = c.GetIntList("ect.network.attn-resolutions").ToList();
        int mc = c.GetInt("ect.network.model-channels"), nb = c.GetInt("ect.network.num-blocks");
        double dropout = c.GetDouble("ect.network.dropout");
        // EDM's augment_dim (9 in its train.py when augmentation is on): only the mapping layer map_augment. We train
        // without augmentation labels, which equals EDM's zero labels (map_augment has no bias), as does sampling.
        int augmentDim = c.GetInt("ect.network.augment-dim", 0);
        var net = c.GetString("ect.network.type") == "ncsnpp"
            ? SongUNetConfig.NcsnPP(resolution, channels, labelDim, mc, mult, nb, attn, dropout)
            : SongUNetConfig.DdpmPP(resolution, channels, labelDim, mc, mult, nb, attn, dropout);
        return net with { AugmentDim = augmentDim };
    }

    /// <summary>
    /// Refuses, before any work, an engine this build cannot run. <paramref name="checkInit"/> false leaves
    /// ect.network.init to the run coordinator, which checks it against the configuration the run really uses
    /// (a continued run's recorded one, not the command line's).
    /// </summary>
    public static void Check(RunSettings settings, bool checkInit = true)
    {
        if (settings.Engine != "torch") return;
        var c = settings.Config;
        var res = c.GetInt("ect.data.resolution");
        var levels = c.GetIntList("ect.network.channel-mult").Count;
        // `ect train` has no --resolution option: the fix names the configuration key.
        try { Ect.Data.ResolutionRule.Check(res, "ect.data.resolution", levels, need => $"Set ect.data.resolution = {need} (e.g. --set ect.data.resolution={need}; images are padded or resized to it)"); }
        catch (Exception e) { throw new ConfigurationException(e.Message); }
        if (checkInit) CheckInit(c);
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
            || Directory.Exists(Path.Combine(runDir, Run.Checkpointer.Folder));
        Check(settings, checkInit: !mayHoldRun);
    }

    /// <summary>
    /// The file named by ect.network.init as a full path, or null when the run starts from random weights. A relative
    /// path is looked up in the current directory, then in the folders above the program (so a checkout's
    /// `teachers/...` is found from anywhere inside it, e.g. `dotnet run` or the tests' bin folder).
    /// </summary>
    public static string? ResolveInit(Akka.Configuration.Config c)
    {
        var init = c.GetString("ect.network.init", "");
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
    public static void CheckInit(Akka.Configuration.Config c)
    {
        if (c.GetString("ect.run.engine", "torch") != "torch") return;
        if (Edm2Engines.IsEdm2(c)) { Edm2Engines.CheckInit(c); return; }
        var path = ResolveInit(c);
        if (path is null) return;
        var given = c.GetString("ect.network.init");
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
            bool described = header.Metadata.TryGetValue("user." + Checkpoints.CheckpointModel.NetworkConfigKey, out var json);
            if (described)
            {
                var found = Checkpoints.CheckpointModel.DeserializeConfig(json!);
                (channels, labels) = (found.InChannels, found.LabelDim);
            }
            else (channels, labels) = Checkpoints.InitWeightsCheck.ImageChannelsAndLabels(header);
            var expected = NetworkConfig(c, c.GetInt("ect.data.resolution"), channels, c.GetBoolean("ect.data.use-labels") ? labels : 0);
            if (described) Checkpoints.WeightsFile.CheckDescribedNetwork(path, header.Metadata, expected);
            Checkpoints.InitWeightsCheck.Check(header, expected);
        }
        catch (InvalidDataException e) { throw new ConfigurationException($"ect.network.init: {e.Message}"); }
        catch (System.Text.Json.JsonException e) { throw new ConfigurationException($"ect.network.init: '{path}' has an unreadable network description ({e.Message})."); }
    }

    public static (ITrainingEngine, IBatchSource) Fake(RunSettings s, string runDir)
    {
        var c = s.Config;
        int parameters = c.GetInt("ect.fake.parameters", 4096);
        var engine = new FakeTrainingEngine(s.Seed, parameters, s.EmaBeta, c.GetInt("ect.fake.step-ms", 0), c.GetLong("ect.fake.nan-at-step", 0),
            c.GetInt("ect.fake.write-ms", 0), c.GetInt("ect.fake.eval-ms", 0));
        return (engine, new FakeBatchSource(s.Seed, s.BatchSize, width: 64));
    }
}
