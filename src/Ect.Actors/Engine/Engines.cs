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
        _ => Torch,
    };

    public static (ITrainingEngine, IBatchSource) Torch(RunSettings s, string runDir)
    {
        var c = s.Config;
        var source = new DatasetBatchSource(s.DataPath, s.BatchSize, s.Seed, c.GetInt("ect.data.resolution"), s.UseLabels,
            c.GetInt("ect.data.max-images", 0));
        var net = NetworkConfig(c, source.Resolution, source.Channels, s.UseLabels ? source.LabelDim : 0);
        var o = new TorchEngineOptions(net, s.BatchSize, s.Seed, s.Threads, s.EmaBeta,
            s.PretrainLr, c.GetDouble("ect.pretrain.p-mean"), c.GetDouble("ect.pretrain.p-std"),
            s.TuningLr, c.GetString("ect.tuning.optimizer") == "adam" ? OptimizerKind.Adam : OptimizerKind.RAdam,
            c.GetDouble("ect.tuning.p-mean"), c.GetDouble("ect.tuning.p-std"),
            c.GetString("ect.tuning.mapping") == "const" ? MappingKind.Const : MappingKind.Sigmoid,
            c.GetDouble("ect.tuning.q"), c.GetDouble("ect.tuning.k"), c.GetDouble("ect.tuning.b"), c.GetDouble("ect.tuning.c"))
        { DataPath = Path.GetFullPath(s.DataPath) };
        return (new TorchTrainingEngine(o, Path.Combine(runDir, Run.Checkpointer.Folder)), source);
    }

    public static SongUNetConfig NetworkConfig(Akka.Configuration.Config c, int resolution, int channels, int labelDim)
    {
        var mult = c.GetIntList("ect.network.channel-mult").ToList();
        var attn = c.GetIntList("ect.network.attn-resolutions").ToList();
        int mc = c.GetInt("ect.network.model-channels"), nb = c.GetInt("ect.network.num-blocks");
        double dropout = c.GetDouble("ect.network.dropout");
        return c.GetString("ect.network.type") == "ncsnpp"
            ? SongUNetConfig.NcsnPP(resolution, channels, labelDim, mc, mult, nb, attn, dropout)
            : SongUNetConfig.DdpmPP(resolution, channels, labelDim, mc, mult, nb, attn, dropout);
    }

    /// <summary>Refuses, before any work, an engine this build cannot run.</summary>
    public static void Check(RunSettings settings)
    {
        if (settings.Engine != "torch") return;
        var c = settings.Config;
        var res = c.GetInt("ect.data.resolution");
        var levels = c.GetIntList("ect.network.channel-mult").Count;
        try { Ect.Data.ResolutionRule.Check(res, "ect.data.resolution", levels); }
        catch (Exception e) { throw new ConfigurationException(e.Message); }
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
